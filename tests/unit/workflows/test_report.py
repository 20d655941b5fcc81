"""The report's P&L arithmetic and its rendering (HTML self-contained, CSV exact)."""

from __future__ import annotations

import csv
import re
from datetime import UTC, date, datetime
from decimal import Decimal as D
from pathlib import Path

from sandbox.workflows.pnl import Position, pnl_books
from sandbox.workflows.report import COVERAGE_COLUMNS, PNL_COLUMNS, Report, render_html, write

DAY = date(2026, 7, 7)
START, END = datetime(2026, 7, 7, tzinfo=UTC), datetime(2026, 7, 8, tzinfo=UTC)


def test_average_cost_long_short_and_flip() -> None:
    p = Position()
    assert p.fill("buy", D(1), D(100)) == 0
    assert p.fill("buy", D(1), D(110)) == 0
    assert (p.qty, p.avg_price) == (D(2), D(105))
    assert p.fill("sell", D("0.5"), D(120)) == D("7.5")
    assert p.fill("sell", D("2.5"), D(100)) == D("-7.5")  # closes 1.5 at a loss of 5 each, opens 1 short at 100
    assert (p.qty, p.avg_price) == (D(-1), D(100))
    assert p.fill("buy", D(1), D(90)) == D(10)  # short covered lower: a gain
    assert (p.qty, p.avg_price) == (D(0), D(0))


def test_books_count_only_the_days_fills_but_carry_the_opening_position() -> None:
    fills = [
        (datetime(2026, 7, 6, 12, tzinfo=UTC), "acct-a", "momentum", "BTC/USD", "buy", D(2), D(100), D(200), D("0.4"), "USD"),
        (datetime(2026, 7, 7, 9, tzinfo=UTC), "acct-a", "momentum", "BTC/USD", "sell", D(1), D(110), D(110), D("0.22"), "USD"),
        (datetime(2026, 7, 7, 10, tzinfo=UTC), "acct-a", None, "ETH/USD", "buy", D(3), D(10), D(30), D("0.06"), "USD"),
        (datetime(2026, 7, 8, 0, tzinfo=UTC), "acct-a", "momentum", "BTC/USD", "sell", D(1), D(90), D(90), D("0.18"), "USD"),
    ]
    books = pnl_books(fills, START, END)
    btc = books[("acct-a", "momentum", "BTC/USD")]
    assert (btc.fills, btc.sold, btc.bought, btc.realised_pnl, btc.fees, btc.net_pnl) == (1, D(1), D(0), D(10), D("0.22"), D("9.78"))
    assert btc.position.qty == D(1)  # the position at the end of the day: the next day's fill is not in it
    eth = books[("acct-a", "—", "ETH/USD")]
    assert (eth.fills, eth.bought, eth.notional, eth.realised_pnl) == (1, D(3), D(30), D(0))


def sample() -> Report:
    books = pnl_books([
        (datetime(2026, 7, 7, 9, tzinfo=UTC), "acct-<b>", "mean-rev", "BTC/USD", "buy", D(1), D(100), D(100), D("0.26"), "USD"),
        (datetime(2026, 7, 7, 10, tzinfo=UTC), "acct-<b>", "mean-rev", "BTC/USD", "sell", D(1), D(97), D(97), D("0.25"), "USD"),
    ], START, END)
    for b in books.values():
        b.orders = 2
    coverage = [{"symbol": "BTC/USD", "trades": 36, "first_trade": datetime(2026, 7, 7, 23, 0, 1, tzinfo=UTC),
                 "last_trade": datetime(2026, 7, 7, 23, 1, 59, tzinfo=UTC), "trade_id_gaps": 1, "missing_trades": 2,
                 "book_rows": 168, "first_book": START, "last_book": START, "book_silences": 0, "longest_book_silence_s": 4.5,
                 "ohlc_bars": 2, "missing_bars": 0}]
    return Report(DAY, datetime(2026, 7, 8, 6, tzinfo=UTC), True, {"filled": 2}, list(books.values()), coverage)


def test_html_is_self_contained_escaped_and_carries_the_figures() -> None:
    page = render_html(sample())
    assert page.startswith("<!DOCTYPE html>") and "2026-07-07" in page
    assert not re.search(r"<script|<link|src=|href=|@import|url\(", page)  # nothing fetched from anywhere
    assert "acct-&lt;b&gt;" in page and "acct-<b>" not in page
    assert '<td class="neg">-3</td>' in page  # realised P&L: bought 100, sold 97
    assert '<td class="neg">-3.51</td>' in page  # net of 0.51 fees
    assert "<td>168</td>" in page and "<td>36</td>" in page


def test_csvs_have_exact_numbers(tmp_path: Path) -> None:
    paths = write(sample(), tmp_path / "reports")
    with paths["pnl_csv"].open() as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(PNL_COLUMNS)
    assert (rows[0]["realised_pnl"], rows[0]["fees"], rows[0]["net_pnl"], rows[0]["orders"]) == ("-3", "0.51", "-3.51", "2")
    with paths["coverage_csv"].open() as handle:
        (cov,) = list(csv.DictReader(handle))
    assert list(cov) == list(COVERAGE_COLUMNS)
    assert cov["first_trade"] == "2026-07-07T23:00:01Z" and cov["missing_trades"] == "2"
    assert paths["html"].name == "trading-report-2026-07-07.html"
