"""Export the Aether features from PostgreSQL and materialise them into the online store.

Runs inside the Feast virtualenv (``python pipeline.py apply|materialize --repo DIR``),
started by ``sandbox.features.materialize``; it does not import the sandbox package.
Database URLs come from the environment (never argv, which ``ps`` shows):
``FEATURES_MARKETDATA_URL`` (the mirrored market data) and ``FEATURES_OMS_URL``
(the OMS database); either may be unset, and a missing table yields no rows.
The last line on stdout is a JSON report.

The computations are defined in docs/feast.md; each is one SQL statement below.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

#: view -> (database env var, SQL returning the entity key, event_timestamp and the features).
QUERIES: dict[str, tuple[str, str]] = {
    "symbol_quote": ("FEATURES_MARKETDATA_URL", """
        SELECT DISTINCT ON (symbol)
               symbol, ts AS event_timestamp,
               ((bid_price + ask_price) / 2)::float8 AS mid_price,
               (ask_price - bid_price)::float8 AS spread,
               ((ask_price - bid_price) * 20000 / (bid_price + ask_price))::float8 AS spread_bps
          FROM market_top_of_book
         WHERE bid_price > 0 AND ask_price > 0
         ORDER BY symbol, ts DESC, kafka_offset DESC, topic DESC
    """),
    "symbol_volatility_1m": ("FEATURES_MARKETDATA_URL", """
        WITH latest AS (SELECT symbol, max(ts) AS t FROM market_trades GROUP BY symbol),
        returns AS (
            SELECT m.symbol, l.t,
                   ln(m.price / lag(m.price) OVER (
                       PARTITION BY m.symbol ORDER BY m.ts, m.topic, m.kafka_offset, m.item)) AS r
              FROM market_trades m JOIN latest l USING (symbol)
             WHERE m.ts > l.t - interval '60 seconds' AND m.price > 0
        )
        SELECT symbol, t AS event_timestamp,
               sqrt(sum(r * r))::float8 AS realised_vol_1m, count(r) AS returns_1m
          FROM returns GROUP BY symbol, t HAVING count(r) > 0
    """),
    "symbol_volume_5m": ("FEATURES_MARKETDATA_URL", """
        WITH latest AS (SELECT symbol, max(ts) AS t FROM market_trades GROUP BY symbol)
        SELECT m.symbol, l.t AS event_timestamp,
               sum(m.qty)::float8 AS volume_5m, sum(m.price * m.qty)::float8 AS notional_5m,
               count(*) AS trade_count_5m
          FROM market_trades m JOIN latest l USING (symbol)
         WHERE m.ts > l.t - interval '300 seconds'
         GROUP BY m.symbol, l.t
    """),
    "account_exposure": ("FEATURES_OMS_URL", """
        SELECT account, max(updated_at) AS event_timestamp,
               sum(abs(qty) * avg_price)::float8 AS gross_exposure,
               sum(qty * avg_price)::float8 AS net_exposure,
               count(*) FILTER (WHERE qty <> 0) AS open_positions
          FROM positions GROUP BY account
    """),
}


def export(view: str, data_dir: Path) -> tuple[int, object, object, str]:
    """Run the view's query and write its Parquet file: (rows, first ts, last ts, note)."""
    import pandas as pd
    import psycopg
    from psycopg import errors

    env, sql = QUERIES[view]
    url = os.environ.get(env)
    if not url:
        return 0, None, None, f"{env} is not set"
    try:
        with psycopg.connect(url, connect_timeout=10) as conn:
            cur = conn.execute(sql)
            columns = [d.name for d in cur.description]
            rows = cur.fetchall()
    except errors.UndefinedTable as exc:
        return 0, None, None, f"no table yet: {exc.diag.message_primary}"
    if not rows:
        return 0, None, None, "no rows"
    frame = pd.DataFrame(rows, columns=columns)
    frame["event_timestamp"] = pd.to_datetime(frame["event_timestamp"], utc=True)
    for column in columns:
        if column.endswith(("returns_1m", "count_5m", "positions")):
            frame[column] = frame[column].astype("int64")
    path = data_dir / f"{view}.parquet"
    tmp = path.with_suffix(".tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return len(frame), frame["event_timestamp"].min(), frame["event_timestamp"].max(), ""


def main(argv: list[str] | None = None) -> int:
    """Entry point; prints progress on stderr and the JSON report on stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["apply", "materialize"])
    parser.add_argument("--repo", required=True, type=Path)
    args = parser.parse_args(argv)
    started = time.monotonic()
    repo = args.repo.resolve()
    os.environ.setdefault("AETHER_FEATURES_DATA", str(repo / "data"))
    data_dir = Path(os.environ["AETHER_FEATURES_DATA"])
    data_dir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(repo))
    import features  # the repository's definitions  # noqa: E402
    from feast import FeatureStore

    store = FeatureStore(repo_path=str(repo))
    store.apply([*features.ENTITIES, *features.FEATURE_VIEWS])
    report: dict = {"action": args.action, "views": {}}
    if args.action == "materialize":
        for view in QUERIES:
            rows, first, last, note = export(view, data_dir)
            entry: dict = {"rows": rows}
            if rows:
                store.materialize(first - timedelta(seconds=1), last + timedelta(seconds=1), feature_views=[view])
                entry.update(first=first.isoformat(), last=last.isoformat())
            else:
                entry["note"] = note
            report["views"][view] = entry
            print(f"{view}: {rows} rows {note}".rstrip(), file=sys.stderr, flush=True)
    report["seconds"] = round(time.monotonic() - started, 3)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
