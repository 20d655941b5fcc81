"""risk-service accounting: average cost, flips, fees, day rollover, late fills, marks, P&L since midnight."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal as D

import pytest

from sandbox.services.risk.assets import base_asset, canonical_asset, canonical_symbol, quote_asset
from sandbox.services.risk.positions import CTX, Fill, Mark, Position, apply_fill, next_mark, value_position

DAY1 = datetime(2026, 3, 1, 15, 0, tzinfo=timezone.utc)
DAY2 = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


def f(side: str, qty: str, price: str, ts: datetime = DAY2, fee: str = "0", fee_currency: str | None = None,
      symbol: str = "XBT/USD") -> Fill:
    return Fill("id", "a", symbol, side, D(qty), D(price), ts, D(fee), fee_currency)


def run(*fills: Fill) -> Position:
    pos = Position("a", "XBT/USD")
    for fill in fills:
        pos = apply_fill(pos, fill)
    return pos


@pytest.mark.parametrize(("fills", "qty", "avg", "realised"), [
    ([f("buy", "1", "100"), f("buy", "1", "200")], "2", "150", "0"),
    ([f("buy", "2", "100"), f("sell", "1", "130")], "1", "100", "30"),
    ([f("buy", "2", "100"), f("sell", "2", "90")], "0", "0", "-20"),
    ([f("buy", "1", "100"), f("sell", "3", "120")], "-2", "120", "20"),  # flip: remainder opened at 120
    ([f("sell", "2", "100"), f("buy", "1", "80")], "-1", "100", "20"),  # short covered lower: gain
    ([f("sell", "1", "100"), f("sell", "1", "110")], "-2", "105", "0"),
])
def test_average_cost(fills: list[Fill], qty: str, avg: str, realised: str) -> None:
    pos = run(*fills)
    assert (pos.qty, pos.avg_cost, pos.realised) == (D(qty), D(avg), D(realised))
    assert pos.version == len(fills)


@pytest.mark.parametrize(("currency", "counted"), [(None, True), ("USD", True), ("ZUSD", True), ("XBT", False)])
def test_fees_in_quote_reduce_realised(currency: str | None, counted: bool) -> None:
    pos = run(f("buy", "1", "100", fee="0.5", fee_currency=currency))
    assert pos.realised == (D("-0.5") if counted else D(0))
    assert pos.day_cash == (D("-100.5") if counted else D("-100"))


def test_day_rollover_and_mark_to_market() -> None:
    pos = run(f("buy", "2", "100", ts=DAY1))
    mark_day1 = Mark("XBT/USD", D("110"), DAY1, DAY1.date(), D("100"))
    # On day 1: bought at 100, marked 110 -> +20 today, all unrealised.
    v1 = value_position(pos, mark_day1, DAY1.date())
    assert (v1.day_pnl, v1.realised_today, v1.unrealised_today, v1.exposure) == (D("20"), D(0), D("20"), D("220"))
    # Day 2, nothing traded, mark unchanged: nothing happened today.
    v2 = value_position(pos, mark_day1, DAY2.date())
    assert v2.day_pnl == 0
    # Day 2, mark moves to 90 and we sell 1 at 95: today's P&L measured from the 110 close.
    mark_day2 = next_mark(mark_day1, "XBT/USD", D("90"), DAY2, "manual")
    assert mark_day2 is not None and mark_day2.day_open == D("110")
    pos = apply_fill(pos, f("sell", "1", "95"))
    v3 = value_position(pos, mark_day2, DAY2.date())
    # cash +95, 1 left at 90, opened the day with 2 at 110: 95 + 90 - 220 = -35
    assert v3.day_pnl == D("-35")
    assert v3.realised_today == D("-5")  # sold at 95 against the 100 average cost
    assert v3.unrealised_today == D("-30")
    assert v3.unrealised == D("-10")


def test_late_fill_moves_the_position_not_today() -> None:
    pos = run(f("buy", "1", "100"))  # today
    late = apply_fill(pos, f("buy", "1", "50", ts=DAY1))  # yesterday's fill arriving late
    assert late.qty == 2 and late.day_open_qty == 1
    assert late.day_cash == pos.day_cash  # not today's cash
    mark = Mark("XBT/USD", D("100"), DAY2, DAY2.date(), D("100"))
    assert value_position(late, mark, DAY2.date()).day_pnl == 0


def test_value_without_mark_uses_average_cost() -> None:
    v = value_position(run(f("buy", "2", "100")), None, DAY2.date())
    assert (v.mark, v.exposure, v.unrealised) == (D("100"), D("200"), D(0))


def test_next_mark_ignores_older_prices() -> None:
    m = next_mark(None, "XBT/USD", D("100"), DAY2, "fill")
    assert m is not None and m.day_open == D("100")
    assert next_mark(m, "XBT/USD", D("1"), DAY1, "fill") is None
    same_day = next_mark(m, "XBT/USD", D("101"), DAY2 + timedelta(hours=1), "fill")
    assert same_day is not None and (same_day.price, same_day.day_open) == (D("101"), D("100"))


def test_precision_survives_large_products() -> None:
    pos = run(f("buy", "999999999999.123456789012345678", "999999999999.987654321098765432"))
    v = value_position(pos, None, DAY2.date())
    assert v.exposure == CTX.multiply(D("999999999999.123456789012345678"), D("999999999999.987654321098765432"))
    assert v.exposure == D("999999999999111111110111.121931521025910684322511812221002896")


def test_average_cost_is_rounded_to_24_places() -> None:
    pos = run(f("buy", "1", "1"), f("buy", "2", "2"))
    assert pos.avg_cost == D("1.666666666666666666666667")


@pytest.mark.parametrize(("symbol", "canonical", "base", "quote"), [
    ("XBT/USD", "BTC/USD", "BTC", "USD"),
    ("xdg/eur", "DOGE/EUR", "DOGE", "EUR"),
    ("XXBT/ZUSD", "BTC/USD", "BTC", "USD"),
    ("ETH2.S/ETH", "ETH2.S/ETH", "ETH2.S", "ETH"),
])
def test_asset_aliases(symbol: str, canonical: str, base: str, quote: str) -> None:
    assert canonical_symbol(symbol) == canonical
    assert (base_asset(symbol), quote_asset(symbol)) == (base, quote)
    assert canonical_asset(base) == base
