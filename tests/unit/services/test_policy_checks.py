"""policy-service decision engine: one table row per violation code, several at once, and clean orders."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from sandbox.services.policy import checks
from sandbox.services.policy.account_rules import AccountRules
from sandbox.services.policy.checks import CODES, Permissions, evaluate
from sandbox.services.policy.instruments import Instrument, Snapshot, parse_instrument
from sandbox.services.policy.models import CheckOrderRequest


def universe_doc(**overrides: Any) -> dict[str, Any]:
    """An item of universe-service's GET /v1/instruments (XBT/USD from the project fixture)."""
    doc: dict[str, Any] = {
        "symbol": "XBT/USD", "altname": "XBTUSD", "pair_key": "XXBTZUSD", "base": "XBT", "quote": "USD",
        "venue_base": "XXBT", "venue_quote": "ZUSD", "ordermin": "0.0001", "costmin": "0.5", "tick_size": "0.1",
        "pair_decimals": 1, "lot_decimals": 8, "cost_decimals": 5, "lot_multiplier": 1, "status": "online",
        "listed": True, "tradable": True,
        "approval": {"state": "approved", "reason": "ok", "by": "risk", "at": "2026-01-01T00:00:00Z"},
    }
    doc.update(overrides)
    return doc


XBT = parse_instrument(universe_doc())
TRADE = Permissions("acct-1", frozenset({"trade", "query_funds"}), 1)
GOOD = {"account": "acct-1", "symbol": "XBT/USD", "side": "buy", "type": "limit", "qty": "0.01", "price": "50000.1"}


def order(**overrides: Any) -> CheckOrderRequest:
    body = {**GOOD, **overrides}
    return CheckOrderRequest.model_validate({k: v for k, v in body.items() if v is not None})


def rules(symbols: list[str] | None = None, notional: dict[str, str] | None = None) -> AccountRules:
    limits = None if notional is None else {k: Decimal(v) for k, v in notional.items()}
    return AccountRules.build("acct-1", symbols, limits, 3)


def codes(o: CheckOrderRequest, inst: Instrument | None = XBT, *, venue: str | None = "online",
          perms: Permissions | None = TRADE, acct: AccountRules | None = None) -> list[str]:
    return [v.code for v in evaluate(o, inst, venue_status=venue, permissions=perms, rules=acct).violations]


def inst(**overrides: Any) -> Instrument:
    return parse_instrument(universe_doc(**overrides))


def test_a_clean_order_is_allowed() -> None:
    decision = evaluate(order(), XBT, venue_status="online", permissions=TRADE, rules=rules(["XBT/USD"], {"USD": "1000"}))
    assert decision.allowed and decision.violations == []
    assert decision.notional == Decimal("500.001") and decision.price_source == "limit_price"
    assert decision.unchecked == []


# one row per code: (code, order overrides, instrument, venue status, permissions, rules)
CASES: list[tuple[str, dict[str, Any], Instrument | None, str | None, Permissions | None, AccountRules | None]] = [
    (checks.INSTRUMENT_UNKNOWN, {"symbol": "DOGE/EUR"}, None, "online", TRADE, None),
    (checks.INSTRUMENT_DELISTED, {}, inst(listed=False), "online", TRADE, None),
    (checks.INSTRUMENT_NOT_APPROVED, {}, inst(approval={"state": "pending"}), "online", TRADE, None),
    (checks.INSTRUMENT_NOT_APPROVED, {}, inst(approval={"state": "excluded", "reason": "x"}), "online", TRADE, None),
    (checks.VENUE_MAINTENANCE, {}, XBT, "maintenance", TRADE, None),
    (checks.VENUE_MAINTENANCE, {}, inst(status="maintenance"), "online", TRADE, None),
    (checks.VENUE_MAINTENANCE, {}, inst(status="halted"), "online", TRADE, None),
    (checks.VENUE_CANCEL_ONLY, {}, inst(status="cancel_only"), "online", TRADE, None),
    (checks.VENUE_CANCEL_ONLY, {}, XBT, "cancel_only", TRADE, None),
    (checks.VENUE_POST_ONLY, {}, inst(status="post_only"), "online", TRADE, None),
    (checks.VENUE_POST_ONLY, {}, XBT, "post_only", TRADE, None),
    (checks.VENUE_POST_ONLY, {"type": "market", "price": None}, inst(status="post_only", costmin=None), "online",
     TRADE, None),
    (checks.VENUE_LIMIT_ONLY, {"type": "market", "price": None}, inst(status="limit_only", costmin=None), "online",
     TRADE, None),
    (checks.QTY_BELOW_ORDERMIN, {"qty": "0.00009", "price": "60000"}, XBT, "online", TRADE, None),
    (checks.QTY_TOO_MANY_DECIMALS, {"qty": "0.123456789"}, XBT, "online", TRADE, None),
    (checks.PRICE_TOO_MANY_DECIMALS, {"price": "50000.15"}, inst(tick_size="0.05"), "online", TRADE, None),
    (checks.PRICE_OFF_TICK, {"price": "50000.1"}, inst(tick_size="0.25"), "online", TRADE, None),
    (checks.COST_BELOW_COSTMIN, {"qty": "0.0001", "price": "4000"}, XBT, "online", TRADE, None),
    (checks.COST_BELOW_COSTMIN, {"type": "market", "price": None, "qty": "0.0001", "reference_price": "4000"}, XBT,
     "online", TRADE, None),
    (checks.API_KEY_NO_TRADE_PERMISSION, {}, XBT, "online", Permissions("acct-1", frozenset({"query_funds"}), 1), None),
    (checks.API_KEY_NO_TRADE_PERMISSION, {}, XBT, "online", Permissions("acct-1", frozenset(), 0), None),
    (checks.PERMISSIONS_UNAVAILABLE, {}, XBT, "online", None, None),
    (checks.SYMBOL_NOT_ALLOWED, {}, XBT, "online", TRADE, rules(["ETH/USD"])),
    (checks.SYMBOL_NOT_ALLOWED, {}, XBT, "online", TRADE, rules([])),
    (checks.NOTIONAL_ABOVE_MAX, {"qty": "1"}, XBT, "online", TRADE, rules(None, {"USD": "50000"})),
    (checks.NOTIONAL_ABOVE_MAX, {"qty": "1"}, XBT, "online", TRADE, rules(None, {"ZUSD": "50000.09"})),
    (checks.REFERENCE_PRICE_REQUIRED, {"type": "market", "price": None}, XBT, "online", TRADE,
     rules(None, {"USD": "1"})),
]


@pytest.mark.parametrize(("code", "overrides", "instrument", "venue", "perms", "acct"), CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_rule_alone(code: str, overrides: dict[str, Any], instrument: Instrument | None, venue: str | None,
                         perms: Permissions | None, acct: AccountRules | None) -> None:
    assert codes(order(**overrides), instrument, venue=venue, perms=perms, acct=acct) == [code]


def test_every_code_is_covered_by_the_table() -> None:
    assert {c[0] for c in CASES} == set(CODES)
    assert len(CODES) == len(set(CODES))


def test_every_violation_is_listed_not_just_the_first() -> None:
    pair = inst(status="cancel_only", approval={"state": "pending"}, tick_size="0.1")
    o = order(qty="0.000012345", price="3.14159")  # below ordermin, 9 lot decimals, 5 price decimals, off tick
    decision = evaluate(o, pair, venue_status="maintenance", permissions=Permissions("acct-1", frozenset(), 0),
                        rules=rules(["ETH/USD"], {"USD": "0.00001"}))
    assert [v.code for v in decision.violations] == [
        checks.INSTRUMENT_NOT_APPROVED, checks.VENUE_MAINTENANCE, checks.VENUE_CANCEL_ONLY,
        checks.QTY_BELOW_ORDERMIN, checks.QTY_TOO_MANY_DECIMALS, checks.PRICE_TOO_MANY_DECIMALS,
        checks.PRICE_OFF_TICK, checks.COST_BELOW_COSTMIN, checks.API_KEY_NO_TRADE_PERMISSION,
        checks.SYMBOL_NOT_ALLOWED, checks.NOTIONAL_ABOVE_MAX,
    ]
    assert not decision.allowed


def test_violation_details() -> None:
    found = {v.code: v for v in evaluate(order(qty="0.00001", price="1000.05"), XBT, venue_status="online",
                                         permissions=TRADE, rules=None).violations}
    assert found[checks.QTY_BELOW_ORDERMIN].document() == {
        "code": "qty_below_ordermin", "message": "qty 0.00001 is below the order minimum 0.0001 XBT",
        "field": "qty", "limit": "0.0001", "actual": "0.00001",
    }
    assert found[checks.PRICE_TOO_MANY_DECIMALS].document()["limit"] == "1"
    assert found[checks.PRICE_TOO_MANY_DECIMALS].document()["actual"] == "2"
    assert found[checks.PRICE_OFF_TICK].document()["limit"] == "0.1"
    cost = found[checks.COST_BELOW_COSTMIN].document()
    assert (cost["limit"], cost["actual"]) == ("0.5", "0.0100005")
    unknown = evaluate(order(symbol="NOPE"), None, venue_status=None, permissions=TRADE, rules=None).violations[0]
    assert unknown.document() == {"code": "instrument_unknown", "message": "no instrument named 'NOPE' at the venue",
                                  "field": "symbol", "actual": "NOPE"}


def test_unknown_instrument_still_checks_the_account() -> None:
    assert codes(order(symbol="DOGE/EUR"), None, perms=None, acct=rules(["XBT/USD"], {"USD": "1"})) == [
        checks.INSTRUMENT_UNKNOWN, checks.PERMISSIONS_UNAVAILABLE, checks.SYMBOL_NOT_ALLOWED,
    ]


@pytest.mark.parametrize(("qty", "price", "ok"), [
    ("0.0001", "5000", True),  # cost exactly the minimum 0.5
    ("0.0001", "4999.9", False),
    ("0.00010000", "50000.10", True),  # trailing zeros are not extra decimals
    ("1E-4", "5E+4", True),
    ("0.12345678", "50000", True),  # exactly lot_decimals
    ("0.123456780", "50000", True),
    ("0.123456781", "50000", False),
])
def test_boundaries(qty: str, price: str, ok: bool) -> None:
    assert (codes(order(qty=qty, price=price)) == []) is ok


def test_exact_decimals_from_json_numbers() -> None:
    # 0.1 as a float is 0.1000000000000000055...: the model keeps the decimal token
    o = CheckOrderRequest.model_validate({**GOOD, "qty": Decimal("0.1"), "price": Decimal("50000.1")})
    assert codes(o) == []
    assert evaluate(o, XBT, venue_status=None, permissions=TRADE, rules=None).notional == Decimal("5000.01")


def test_market_orders_use_the_reference_price() -> None:
    o = order(type="market", price=None, reference_price="50000.123", qty="0.01")
    decision = evaluate(o, XBT, venue_status="online", permissions=TRADE, rules=rules(None, {"USD": "1000"}))
    assert decision.allowed, decision.violations  # the reference price is not tick-checked
    assert decision.price_source == "reference_price" and decision.notional == Decimal("500.00123")
    bare = evaluate(order(type="market", price=None), XBT, venue_status="online", permissions=TRADE, rules=None)
    assert bare.allowed and bare.unchecked == [checks.COST_BELOW_COSTMIN] and bare.notional is None


def test_post_only_orders_pass_post_only_pairs() -> None:
    assert codes(order(post_only=True), inst(status="post_only"), venue="post_only") == []


def test_unknown_venue_status_is_not_checked() -> None:
    assert codes(order(), venue=None) == []


def test_reduce_only_pairs_are_left_to_risk() -> None:
    assert codes(order(), inst(status="reduce_only")) == []


def test_notional_limit_in_another_quote_does_not_apply() -> None:
    eth_xbt = parse_instrument(universe_doc(symbol="ETH/XBT", altname="ETHXBT", pair_key="XETHXXBT", base="ETH",
                                            quote="XBT", venue_quote="XXBT", tick_size="0.00001", pair_decimals=5,
                                            costmin="0.00001", ordermin="0.002"))
    o = order(symbol="ETH/XBT", qty="100", price="0.05")
    assert codes(o, eth_xbt, acct=rules(None, {"USD": "1"})) == []
    assert codes(o, eth_xbt, acct=rules(None, {"XBT": "4.99"})) == [checks.NOTIONAL_ABOVE_MAX]


@pytest.mark.parametrize("spelling", ["XBT/USD", "xbtusd", "XXBTZUSD", "BTC/USD", "btc-usd", "BTC_USD"])
def test_allowed_symbols_match_every_spelling(spelling: str) -> None:
    assert codes(order(), acct=rules([spelling.upper()])) == []


def test_snapshot_resolves_and_prefers_listed() -> None:
    old = inst(listed=False, pair_key="XBTUSD.OLD")
    snap = Snapshot([old, XBT])
    for name in ("XBT/USD", "xbt/usd", "XBTUSD", "XXBTZUSD", "BTC-USD", "BTC/USD", " xbt/usd "):
        assert snap.resolve(name) is XBT, name
    assert snap.resolve("NOPE") is None and snap.resolve("A" * 500) is None
    assert len(snap) == 2
