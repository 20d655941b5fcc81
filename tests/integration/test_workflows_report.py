"""report-generation from a real OMS schema and the mirrored tables: figures, P&L, coverage and gaps."""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.services.oms.migrations import MIGRATIONS
from sandbox.spec.loader import default_spec
from sandbox.workflows import runner
from sandbox.workflows.marketdata import ensure_schema
from sandbox.workflows.registry import lookup
from sandbox.workflows.settings import WorkflowSettings

pytestmark = pytest.mark.integration

DAY = date(2026, 7, 7)
T = datetime(2026, 7, 7, 9, tzinfo=UTC)


def order(conn: Any, account: str, strategy: str | None, symbol: str, side: str, qty: str, created: datetime) -> uuid.UUID:
    oid = uuid.uuid4()
    conn.execute(
        "INSERT INTO orders (id, account, strategy, client_order_id, symbol, pair, side, type, qty, state, created_by, created_at) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, 'market', %s, 'filled', 'test', %s)",
        (oid, account, strategy, oid.hex, symbol, symbol.replace("/", ""), side, D(qty), created),
    )
    return oid


def fill(conn: Any, oid: uuid.UUID, account: str, strategy: str | None, symbol: str, side: str, qty: str, price: str, fee: str, ts: datetime) -> None:
    conn.execute(
        "INSERT INTO fills (fill_id, order_id, account, strategy, symbol, side, qty, price, cost, fee, fee_currency, fee_asset, liquidity, ts, source) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, 'USD', 'ZUSD', 'taker', %s, 'venue')",
        (uuid.uuid4().hex, oid, account, strategy, symbol, side, D(qty), D(price), D(qty) * D(price), D(fee), ts),
    )


@pytest.fixture
def settings(postgres: EmbeddedPostgres, tmp_path: Path) -> WorkflowSettings:
    tag = uuid.uuid4().hex[:8]
    for db in (f"wf_{tag}", f"md_{tag}", f"oms_{tag}"):
        postgres.create_database(db)
    with psycopg.connect(postgres.dsn(f"oms_{tag}")) as conn:
        for m in MIGRATIONS:
            conn.execute(m.sql)
        conn.commit()
        a = order(conn, "acct-1", "momentum", "BTC/USD", "buy", "2", T - timedelta(days=1))
        fill(conn, a, "acct-1", "momentum", "BTC/USD", "buy", "2", "60000", "31.2", T - timedelta(days=1))  # opening position
        b = order(conn, "acct-1", "momentum", "BTC/USD", "sell", "1.5", T)
        fill(conn, b, "acct-1", "momentum", "BTC/USD", "sell", "1", "61000", "15.86", T)
        fill(conn, b, "acct-1", "momentum", "BTC/USD", "sell", "0.5", "59000", "7.67", T + timedelta(minutes=1))
        c = order(conn, "acct-2", None, "ETH/USD", "buy", "10", T)
        fill(conn, c, "acct-2", None, "ETH/USD", "buy", "10", "3000", "7.8", T)
        order(conn, "acct-2", None, "ETH/USD", "sell", "10", T + timedelta(hours=1))  # no fill
    with psycopg.connect(postgres.dsn(f"md_{tag}")) as conn:
        ensure_schema(conn)
        start = datetime(2026, 7, 7, 23, 0, tzinfo=UTC)
        ids = [1, 2, 3, 7, 8]  # trade ids 4-6 never seen: one gap, 3 missing
        for i, tid in enumerate(ids):
            conn.execute("INSERT INTO market_trades VALUES (%s, 'BTC/USD', 60000, 0.1, 'buy', 'market', %s, 'kraken.trade.BTC-USD', %s, 0)",
                         (start + timedelta(seconds=i), tid, i))
        for i, secs in enumerate([0, 1, 2, 100, 101]):  # one silence of 98 s
            conn.execute("INSERT INTO market_top_of_book VALUES (%s, 'BTC/USD', 59999, 1, 60001, 1, 'kraken.book.BTC-USD', %s)",
                         (start + timedelta(seconds=secs), i))
        for i, minute in enumerate([0, 1, 4]):  # bars 2 and 3 missing
            conn.execute("INSERT INTO market_ohlc VALUES (%s, 'BTC/USD', 1, 1, 1, 1, 1, 1, 1, 1, 'kraken.ohlc.BTC-USD', %s, 0)",
                         (start + timedelta(minutes=minute), i))
        conn.execute("INSERT INTO market_trades VALUES (%s, 'ETH/USD', 3000, 1, 'sell', 'limit', 5, 'kraken.trade.ETH-USD', 0, 0)",
                     (start + timedelta(days=1),))  # the next day: not in the report
    return WorkflowSettings(
        workflows_database_url=postgres.dsn(f"wf_{tag}"), marketdata_database_url=postgres.dsn(f"md_{tag}"),
        oms_database_url=postgres.dsn(f"oms_{tag}"), reports_dir=tmp_path / "reports", report_date=DAY,
    )


def rows(path: str) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_report_figures(settings: WorkflowSettings) -> None:
    run = runner.run(lookup(default_spec(), "report-generation"), settings, "cli")
    assert run["outcome"] == "ok", run
    detail = run["detail"]
    assert detail["day"] == "2026-07-07" and detail["notes"] == []
    assert detail["totals"]["orders"] == "3" and detail["totals"]["fills"] == "3"

    pnl = {(r["account"], r["strategy"], r["symbol"]): r for r in rows(detail["pnl_csv"])}
    btc = pnl[("acct-1", "momentum", "BTC/USD")]
    # avg cost 60000: +1000 on 1, -1000 x 0.5 on the rest -> +500; fees of the day 23.53
    assert (btc["orders"], btc["fills"], btc["sold"], btc["realised_pnl"], btc["fees"], btc["net_pnl"], btc["position"]) == (
        "1", "2", "1.5", "500", "23.53", "476.47", "0.5")
    eth = pnl[("acct-2", "—", "ETH/USD")]
    assert (eth["orders"], eth["fills"], eth["bought"], eth["notional"], eth["realised_pnl"], eth["position"]) == (
        "2", "1", "10", "30000", "0", "10")

    (cov,) = rows(detail["coverage_csv"])
    assert (cov["symbol"], cov["trades"], cov["trade_id_gaps"], cov["missing_trades"]) == ("BTC/USD", "5", "1", "3")
    assert (cov["book_rows"], cov["book_silences"], cov["longest_book_silence_s"]) == ("5", "1", "98.0")
    assert (cov["ohlc_bars"], cov["missing_bars"]) == ("3", "2")

    page = Path(detail["html"]).read_text()
    assert "476.47" in page and "acct-2" in page and "BTC/USD" in page
    assert run["records"] == 2 + 1  # P&L rows + coverage rows


def test_default_day_is_the_latest_activity_and_a_missing_oms_is_said(settings: WorkflowSettings, postgres: EmbeddedPostgres) -> None:
    settings = settings.model_copy(update={"report_date": None, "oms_database_url": postgres.dsn(f"nope_{uuid.uuid4().hex[:6]}")})
    run = runner.run(lookup(default_spec(), "report-generation"), settings, "cli")
    assert run["outcome"] == "ok"
    assert run["detail"]["day"] == "2026-07-08"  # the ETH trade is the latest activity
    assert "no OMS database" in run["detail"]["notes"][0]
    (cov,) = rows(run["detail"]["coverage_csv"])
    assert (cov["symbol"], cov["trades"]) == ("ETH/USD", "1")
