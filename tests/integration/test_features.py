"""The Feast pipeline on embedded servers: mirrored rows -> materialise -> feature server -> HTTP.

Market rows come from a shipped replay session (trades as Kraken sent them; the
top of book from the sandbox's book code after every book message), written
into the ``marketdata`` tables with the mirror's own DDL; positions go into the
OMS schema created by the OMS's migrations.  The expected features are computed
here in plain Python over those rows, independently of the pipeline's SQL.
"""

from __future__ import annotations

import asyncio
import json
import math
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import psycopg
import pytest

from sandbox.features.materialize import MaterializeReport, run_pipeline
from sandbox.features.server import FeatureServer
from sandbox.features.venv import ensure_feast
from sandbox.infra.ports import free_port
from sandbox.replay.book import V2Books, parse_frame
from sandbox.replay.fixture import read_session
from sandbox.services.kit.db import apply_migrations, create_pool
from sandbox.services.oms.migrations import MIGRATIONS as OMS_MIGRATIONS
from sandbox.services.risk.rules import VolatilityScaling, scale_limit
from sandbox.services.risk.volatility import MISSING, UNAVAILABLE, VolatilitySource
from sandbox.workflows.marketdata import ensure_schema

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("features")]

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "kraken_replays" / "v2-book10-majors.ndjson.gz"
SYMBOLS = ("BTC/USD", "ETH/USD")
SYMBOL_FEATURES = [
    "symbol_quote:mid_price", "symbol_quote:spread", "symbol_quote:spread_bps",
    "symbol_volatility_1m:realised_vol_1m", "symbol_volatility_1m:returns_1m",
    "symbol_volume_5m:volume_5m", "symbol_volume_5m:notional_5m", "symbol_volume_5m:trade_count_5m",
]
POSITIONS = [  # account, symbol, qty, avg_price
    ("acct-a", "BTC/USD", "0.5", "60000"), ("acct-a", "ETH/USD", "-2", "3000.5"), ("acct-b", "SOL/USD", "0", "150"),
]


def _ts(text: str | None, fallback: float) -> datetime:
    if text:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    return datetime.fromtimestamp(fallback, timezone.utc)


def session_rows() -> tuple[list[tuple], list[tuple]]:
    """(market_trades rows, market_top_of_book rows) of SYMBOLS, one Kafka record per message (trades) or item (book)."""
    books = V2Books(verify=False)
    offsets: dict[str, int] = defaultdict(int)
    trades, tops = [], []
    for record in read_session(FIXTURE).records():
        if record.dir != "recv":
            continue
        msg = parse_frame(record.frame)
        if not isinstance(msg, dict):
            continue
        books.handle(msg)
        channel = msg.get("channel")
        items = [i for i in msg.get("data") or () if isinstance(i, dict) and i.get("symbol") in SYMBOLS]
        if channel == "trade" and items:
            topic = "kraken.trade." + items[0]["symbol"].replace("/", "-")
            offset = offsets[topic]
            offsets[topic] += 1
            for n, t in enumerate(items):
                trades.append((_ts(t.get("timestamp"), record.t), t["symbol"], t["price"], t["qty"], t["side"],
                               t.get("ord_type"), t.get("trade_id"), topic, offset, n))
        elif channel == "book" and msg.get("type") in ("snapshot", "update"):
            for item in items:
                book = books.book(item["symbol"])
                bid, ask = book.best_bid, book.best_ask
                if bid is None or ask is None:
                    continue
                topic = "kraken.book." + item["symbol"].replace("/", "-")
                tops.append((_ts(item.get("timestamp"), record.t), item["symbol"], bid.price, bid.qty, ask.price,
                             ask.qty, topic, offsets[topic]))
                offsets[topic] += 1
    return trades, tops


def expected_features(trades: list[tuple], tops: list[tuple], symbol: str) -> dict[str, float]:
    """The features of docs/feast.md, computed directly over the rows."""
    quote = max((r for r in tops if r[1] == symbol), key=lambda r: (r[0], r[7]))
    bid, ask = quote[2], quote[4]
    mid = (bid + ask) / 2
    mine = sorted((r for r in trades if r[1] == symbol), key=lambda r: (r[0], r[7], r[8], r[9]))
    last = mine[-1][0]
    minute = [r[2] for r in mine if r[0] > last - timedelta(seconds=60)]
    returns = [(b / a).ln() for a, b in zip(minute, minute[1:])]
    five = [r for r in mine if r[0] > last - timedelta(seconds=300)]
    return {
        "mid_price": float(mid), "spread": float(ask - bid), "spread_bps": float((ask - bid) / mid * 10000),
        "realised_vol_1m": math.sqrt(float(sum(r * r for r in returns))), "returns_1m": len(returns),
        "volume_5m": float(sum(r[3] for r in five)), "notional_5m": float(sum(r[2] * r[3] for r in five)),
        "trade_count_5m": len(five), "_quote_ts": quote[0], "_trade_ts": last,
    }


def online(url: str, features: list[str], entities: dict[str, list[str]]) -> dict[str, dict]:
    """POST /get-online-features; {feature name: {"values": .., "statuses": .., "event_timestamps": ..}}."""
    body = json.dumps({"features": features, "entities": entities}).encode()
    request = urllib.request.Request(url + "/get-online-features", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        doc = json.load(response)
    return dict(zip(doc["metadata"]["feature_names"], doc["results"], strict=True))


@dataclass
class Platform:
    url: str
    server: FeatureServer
    report: MaterializeReport
    trades: list[tuple]
    tops: list[tuple]


def _create_db(postgres, name: str) -> str:
    postgres.create_database(name)
    return postgres.dsn(name)


@pytest.fixture(scope="module")
def features_platform(postgres, redis_server, infra_root: Path) -> Iterator[Platform]:
    """Mirrored rows and positions in PostgreSQL, materialised into Redis, served by `feast serve`."""
    ensure_feast()
    marketdata = _create_db(postgres, "features_marketdata")
    oms = _create_db(postgres, "features_oms")
    trades, tops = session_rows()
    with psycopg.connect(marketdata) as conn:
        ensure_schema(conn)
        with conn.cursor() as cur:
            cur.execute("TRUNCATE market_trades, market_top_of_book")
            cur.executemany("INSERT INTO market_trades VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", trades)
            cur.executemany("INSERT INTO market_top_of_book VALUES (%s,%s,%s,%s,%s,%s,%s,%s)", tops)

    async def migrate() -> None:
        pool = await create_pool(oms)
        try:
            await apply_migrations(pool, OMS_MIGRATIONS)
        finally:
            await pool.close()

    asyncio.run(migrate())
    with psycopg.connect(oms) as conn:
        conn.execute("TRUNCATE positions")
        for account, symbol, qty, price in POSITIONS:
            conn.execute("INSERT INTO positions (account, symbol, qty, avg_price) VALUES (%s,%s,%s,%s)",
                         (account, symbol, Decimal(qty), Decimal(price)))
    home = infra_root / "feast"
    repo = home / "repo"
    redis_url = f"redis://127.0.0.1:{redis_server.port}/7"
    report = run_pipeline("materialize", repo, redis_url=redis_url, marketdata_url=marketdata, oms_url=oms)
    with FeatureServer(home, repo, free_port()) as server:
        yield Platform(server.url, server, report, trades, tops)


def test_materialisation_reports_what_it_wrote(features_platform: Platform) -> None:
    views = features_platform.report.views
    assert {name: v["rows"] for name, v in views.items()} == {
        "symbol_quote": 2, "symbol_volatility_1m": 2, "symbol_volume_5m": 2, "account_exposure": 2,
    }


@pytest.mark.parametrize("symbol", SYMBOLS, ids=lambda s: s.replace("/", "-"))  # a "/" in an id breaks xdist_group
def test_served_features_equal_the_ones_computed_from_the_rows(features_platform: Platform, symbol: str) -> None:
    p = features_platform
    want = expected_features(p.trades, p.tops, symbol)
    got = online(p.url, SYMBOL_FEATURES, {"symbol": [symbol]})
    assert got["symbol"]["values"] == [symbol]
    for name, value in want.items():
        if name.startswith("_"):
            continue
        assert got[name]["statuses"] == ["PRESENT"], name
        assert got[name]["values"][0] == pytest.approx(value, rel=1e-9, abs=1e-12), name
    assert want["returns_1m"] > 10 and want["realised_vol_1m"] > 0  # the window really holds a minute of trades
    quote_ts = _ts(got["mid_price"]["event_timestamps"][0], 0)
    trade_ts = _ts(got["realised_vol_1m"]["event_timestamps"][0], 0)
    assert (quote_ts, trade_ts) == (want["_quote_ts"], want["_trade_ts"])


def test_unknown_symbol_is_not_found(features_platform: Platform) -> None:
    got = online(features_platform.url, ["symbol_quote:mid_price"], {"symbol": ["NOPE/USD"]})
    # Feast 0.67's HTTP server says PRESENT with a null value and the epoch for a key it has no row for.
    assert got["mid_price"]["values"] == [None]
    assert got["mid_price"]["event_timestamps"] == ["1970-01-01T00:00:00Z"]


def test_account_exposure_from_oms_positions(features_platform: Platform) -> None:
    features = ["account_exposure:gross_exposure", "account_exposure:net_exposure", "account_exposure:open_positions"]
    got = online(features_platform.url, features, {"account": ["acct-a", "acct-b"]})
    expected = {}
    for account in ("acct-a", "acct-b"):
        rows = [(Decimal(q), Decimal(p)) for a, _s, q, p in POSITIONS if a == account]
        expected[account] = (float(sum(abs(q) * p for q, p in rows)), float(sum(q * p for q, p in rows)),
                             sum(1 for q, _p in rows if q != 0))
    assert got["gross_exposure"]["values"] == [pytest.approx(expected["acct-a"][0]), pytest.approx(expected["acct-b"][0])]
    assert got["net_exposure"]["values"] == [pytest.approx(expected["acct-a"][1]), pytest.approx(expected["acct-b"][1])]
    assert got["open_positions"]["values"] == [expected["acct-a"][2], expected["acct-b"][2]]


def test_risk_volatility_source_scales_the_limit_from_the_server(features_platform: Platform) -> None:
    """risk-service's client against the real feature server: a value, a missing symbol, a server that is down."""
    p = features_platform
    vol = expected_features(p.trades, p.tops, "BTC/USD")["realised_vol_1m"]

    async def lookups(url: str, symbols: list[str]):
        source = VolatilitySource(httpx.AsyncClient(base_url=url), feature="symbol_volatility_1m:realised_vol_1m",
                                  ttl_s=5, error_ttl_s=1, timeout_s=2)
        try:
            return [await source.get(s) for s in symbols]
        finally:
            await source.aclose()

    btc, unknown = asyncio.run(lookups(p.url, ["BTC/USD", "NOPE/USD"]))
    assert float(btc.value) == pytest.approx(vol, rel=1e-9)
    assert unknown.value is None and unknown.problem == MISSING
    reference = Decimal(str(vol)) / 4  # the session's volatility is 4x the reference: limit / 4
    scaled = scale_limit(Decimal(100), VolatilityScaling(reference, Decimal("0.1"), btc))
    assert scaled.scaled and float(scaled.limit) == pytest.approx(25, rel=1e-9)
    fallback = scale_limit(Decimal(100), VolatilityScaling(reference, Decimal("0.1"), unknown))
    assert (fallback.limit, fallback.scaled) == (Decimal(100), False) and MISSING in fallback.reason

    (down,) = asyncio.run(lookups(f"http://127.0.0.1:{free_port()}", ["BTC/USD"]))
    assert down.problem == UNAVAILABLE
    assert scale_limit(Decimal(100), VolatilityScaling(reference, Decimal("0.1"), down)).limit == Decimal(100)
