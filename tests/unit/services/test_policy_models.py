"""policy-service request models, exact decimal helpers and instrument parsing (no servers)."""

from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import Any

import pytest
from pydantic import ValidationError

from sandbox.services.policy.instruments import InstrumentError, name_candidates, parse_instrument, parse_listing
from sandbox.services.policy.models import CheckOrderRequest, RulesUpdate
from sandbox.services.policy.numbers import is_multiple, multiply, places, tidy

GOOD = {"account": "acct-1", "symbol": "XBT/USD", "side": "buy", "type": "limit", "qty": "0.01", "price": "50000.1"}


@pytest.mark.parametrize(("value", "expected"), [
    ("0", 0), ("1", 0), ("1.0", 0), ("1.10", 1), ("0.00050", 4), ("1E+2", 0), ("1E-7", 7), ("123.456", 3),
    ("0.000000000000000000000000000001", 30), ("100", 0), ("5.000000000000000000000000000000000000", 0),
])
def test_places(value: str, expected: int) -> None:
    assert places(Decimal(value)) == expected


@pytest.mark.parametrize(("value", "step", "expected"), [
    ("50000.1", "0.1", True), ("50000.15", "0.1", False), ("1.25", "0.25", True), ("1.2", "0.25", False),
    ("100", "5", True), ("1E+3", "0.001", True), ("0.3", "0.1", True), ("123456789012345.123456789", "0.000000001", True),
    ("999999999999999.999999999999999999999999999999", "0.000000000000000000000000000003", True),
    ("1", "1E-30", True), ("0.00001", "0.00001", True), ("0.000015", "0.00001", False),
])
def test_is_multiple_is_exact(value: str, step: str, expected: bool) -> None:
    assert is_multiple(Decimal(value), Decimal(step)) is expected


def test_multiply_is_exact_beyond_28_digits() -> None:
    a, b = Decimal("999999999999999.123456789012345678901234567891"), Decimal("999999999999999.5")
    assert Fraction(multiply(a, b)) == Fraction(a) * Fraction(b)
    assert tidy(Decimal("50.10")) == "50.1" and tidy(Decimal("1E+2")) == "100" and tidy(Decimal("0.0")) == "0"


def test_check_order_accepts_strings_and_numbers() -> None:
    o = CheckOrderRequest.model_validate({**GOOD, "qty": 1, "price": Decimal("2.5"), "strategy": "mm-1"})
    assert (o.qty, o.price, o.post_only, o.strategy) == (Decimal(1), Decimal("2.5"), False, "mm-1")


@pytest.mark.parametrize("change", [
    {"type": "limit", "price": None},
    {"type": "market"},  # a price on a market order
    {"type": "market", "price": None, "post_only": True},
    {"qty": "0"}, {"qty": "-1"}, {"qty": "NaN"}, {"qty": "Infinity"}, {"qty": "1e16"}, {"qty": "abc"},
    {"qty": "0." + "0" * 30 + "1"},  # 31 decimal places
    {"price": "0"}, {"reference_price": "-2"},
    {"side": "short"}, {"type": "stop"}, {"post_only": "yes"}, {"post_only": 1},
    {"account": ""}, {"account": "a" * 65}, {"account": "bad account"}, {"account": "a\x00"},
    {"symbol": ""}, {"symbol": "X" * 65}, {"symbol": "XBT USD"}, {"symbol": "XBT/USD\n"},
    {"strategy": "s" * 129}, {"client_order_id": "has space"},
    {"leverage": "2"},  # unknown field
])
def test_check_order_rejects_malformed_orders(change: dict[str, Any]) -> None:
    body = {**GOOD, **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ValidationError):
        CheckOrderRequest.model_validate(body)


def test_rules_update_normalises() -> None:
    body = RulesUpdate.model_validate({"allowed_symbols": ["xbt/usd", "XBT/USD", "eth-usd"],
                                       "max_order_notional": {"usd": "1000.50", "XBT": 2}, "reason": "  desk limits "})
    assert body.allowed_symbols == ["XBT/USD", "ETH-USD"]
    assert body.max_order_notional == {"USD": Decimal("1000.50"), "XBT": Decimal(2)}
    assert body.reason == "desk limits"
    assert RulesUpdate.model_validate({}).allowed_symbols is None


@pytest.mark.parametrize("body", [
    {"allowed_symbols": "XBT/USD"}, {"allowed_symbols": ["bad symbol"]}, {"allowed_symbols": ["X"] * 1001},
    {"max_order_notional": {"USD": "0"}}, {"max_order_notional": {"U": "1"}}, {"max_order_notional": {"USD": "x"}},
    {"max_order_notional": {f"C{i:03d}": "1" for i in range(65)}}, {"reason": "ab"}, {"reason": "bad\u202ereason"},
    {"other": 1},
])
def test_rules_update_rejects(body: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        RulesUpdate.model_validate(body)


def universe_item(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "symbol": "ETH/XBT", "altname": "ETHXBT", "pair_key": "XETHXXBT", "base": "ETH", "quote": "XBT",
        "venue_quote": "XXBT", "ordermin": "0.002", "costmin": "0.00001", "tick_size": "0.00001",
        "pair_decimals": 5, "lot_decimals": 8, "status": "online", "listed": True,
        "approval": {"state": "pending", "reason": None},
    }
    doc.update(overrides)
    return doc


def test_parse_instrument_keeps_decimals_exact() -> None:
    inst = parse_instrument(json.loads(json.dumps(universe_item()), parse_float=Decimal))
    assert inst.ordermin == Decimal("0.002") and inst.tick_size == Decimal("0.00001")
    assert inst.summary == {
        "symbol": "ETH/XBT", "altname": "ETHXBT", "pair_key": "XETHXXBT", "base": "ETH", "quote": "XBT",
        "status": "online", "listed": True, "approval": "pending", "ordermin": "0.002", "costmin": "0.00001",
        "tick_size": "0.00001", "pair_decimals": 5, "lot_decimals": 8,
    }
    assert parse_instrument(universe_item(costmin=None)).costmin is None


@pytest.mark.parametrize("change", [
    {"tick_size": "0"}, {"tick_size": "-0.1"}, {"ordermin": "NaN"}, {"ordermin": 0.5}, {"pair_decimals": 31},
    {"lot_decimals": True}, {"symbol": ""}, {"approval": {"state": "maybe"}}, {"tick_size": "1E-50"},
    {"quote": None},
])
def test_parse_instrument_rejects(change: dict[str, Any]) -> None:
    with pytest.raises(InstrumentError):
        parse_instrument(universe_item(**change))


def test_parse_listing_skips_bad_items() -> None:
    good, skipped = parse_listing([universe_item(), universe_item(pair_key="BAD", tick_size="x"), "junk"])
    assert [i.pair_key for i in good] == ["XETHXXBT"]
    assert [k for k, _ in skipped] == ["BAD", "None"]


def test_name_candidates() -> None:
    assert name_candidates("btc-usd") == ["BTC-USD", "BTC/USD", "XBT-USD", "XBT/USD"]
    assert name_candidates("DOGE_USD")[-1] == "XDG/USD"
