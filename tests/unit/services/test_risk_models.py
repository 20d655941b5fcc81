"""risk-service API models and fill parsing: strict bodies, clear rejections, exact decimals."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from typing import Any

import pytest
from pydantic import ValidationError

from sandbox.services.risk.consumer import parse_batch, parse_message, to_fill
from sandbox.services.risk.models import (
    AccountLimitsUpdate,
    CheckOrderRequest,
    EsgExclusionCreate,
    FillEvent,
    KillSwitchUpdate,
    PositionLimitUpdate,
    RestrictedCreate,
    path_symbol,
)
from sandbox.services.risk.numbers import plain

ORDER = {"account": "acct-1", "symbol": "xbt/usd", "side": "buy", "qty": "0.5", "price": "50000.1"}


def test_check_order_request_normalises_and_keeps_decimals() -> None:
    req = CheckOrderRequest.model_validate(ORDER)
    assert (req.symbol, req.qty, req.price) == ("XBT/USD", D("0.5"), D("50000.1"))
    assert CheckOrderRequest.model_validate({**ORDER, "qty": 0.1}).qty == D("0.1")


@pytest.mark.parametrize(("change", "field"), [
    ({"symbol": "XBTUSD"}, "symbol"),  # the asset rules need BASE/QUOTE
    ({"symbol": "XBT/USD/EUR"}, "symbol"),
    ({"side": "hold"}, "side"),
    ({"qty": "0"}, "qty"),
    ({"qty": "-1"}, "qty"),
    ({"qty": "NaN"}, "qty"),
    ({"qty": "1e13"}, "qty"),
    ({"qty": "0.0000000000000000001"}, "qty"),
    ({"price": "0"}, "price"),
    ({"account": ""}, "account"),
    ({"account": "a b"}, "account"),
    ({"account": "a" * 65}, "account"),
    ({"account": "a..b"}, "account"),  # would not be a valid NATS subject token sequence
    ({"account": "a."}, "account"),
    ({"strategy": "s@1"}, "strategy"),
    ({"reference_price": "Infinity"}, "reference_price"),
    ({"surprise": 1}, "surprise"),
])
def test_check_order_request_rejects(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        CheckOrderRequest.model_validate({**ORDER, **change})
    assert field in {str(err["loc"][0]) for err in info.value.errors()}


@pytest.mark.parametrize(("body", "ok"), [
    ({"kind": "symbol", "value": "eth/usd", "reason": "x"}, True),
    ({"kind": "asset", "value": "doge", "reason": "x", "account": "a1"}, True),
    ({"kind": "symbol", "value": "ETH", "reason": "x"}, False),
    ({"kind": "asset", "value": "ETH/USD", "reason": "x"}, False),
    ({"kind": "asset", "value": "ETH", "reason": ""}, False),
    ({"kind": "asset", "value": "ETH", "reason": "   "}, False),
    ({"kind": "asset", "value": "ETH", "reason": "a\x00b"}, False),
    ({"kind": "asset", "value": "ETH", "reason": "x" * 501}, False),
    ({"kind": "pair", "value": "ETH", "reason": "x"}, False),
])
def test_restricted_create(body: dict[str, Any], ok: bool) -> None:
    if ok:
        created = RestrictedCreate.model_validate(body)
        assert created.value == body["value"].upper()
    else:
        with pytest.raises(ValidationError):
            RestrictedCreate.model_validate(body)


def test_limits_and_exclusions_bounds() -> None:
    assert AccountLimitsUpdate.model_validate({}).gross_exposure is None
    assert AccountLimitsUpdate.model_validate({"concentration_pct": "12.5"}).concentration_pct == D("12.5")
    for bad in ({"concentration_pct": 100.5}, {"daily_loss": -1}, {"gross_exposure": "1e16"}, {"x": 1}):
        with pytest.raises(ValidationError):
            AccountLimitsUpdate.model_validate(bad)
    assert PositionLimitUpdate.model_validate({"max_position": 0}).max_position == 0
    assert EsgExclusionCreate.model_validate({"asset": "xmr", "reason": "privacy"}).asset == "XMR"
    with pytest.raises(ValidationError):
        EsgExclusionCreate.model_validate({"asset": "XMR", "reason": "r", "score": 101})


def test_kill_switch_needs_a_reason_to_activate() -> None:
    assert KillSwitchUpdate.model_validate({"active": False}).reason == ""
    assert KillSwitchUpdate.model_validate({"active": True, "reason": "halt"}).active
    with pytest.raises(ValidationError):
        KillSwitchUpdate.model_validate({"active": True})
    with pytest.raises(ValidationError):
        KillSwitchUpdate.model_validate({"active": "yes please", "reason": "x"})


@pytest.mark.parametrize(("text", "symbol"), [("XBT/USD", "XBT/USD"), ("xbt-usd", "XBT/USD"), ("ETH2.S-ETH", "ETH2.S/ETH")])
def test_path_symbol(text: str, symbol: str) -> None:
    assert path_symbol(text) == symbol


@pytest.mark.parametrize(("value", "text"), [
    (D("1.500"), "1.5"), (D("1E+2"), "100"), (D("-0.0"), "0"), (D("0E-36"), "0"), (D("2.6E-1"), "0.26"), (D("-3"), "-3"),
])
def test_plain(value: D, text: str) -> None:
    assert plain(value) == text


NOW = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)
FILL = {"fill_id": "f-1", "order_id": "o-1", "client_order_id": "c-1", "account": "a", "strategy": "s",
        "symbol": "XBT/USD", "side": "sell", "qty": "0.25", "price": 50000.5, "fee": "0.1", "fee_currency": "ZUSD",
        "liquidity": "maker", "ts": NOW.isoformat()}


def test_fill_message_parses_with_exact_numbers_and_ignores_unknown_fields() -> None:
    fill = parse_message(json.dumps({**FILL, "venue": "kraken"}).encode())
    assert not isinstance(fill, str)
    assert (fill.qty, fill.price, fill.signed_qty, fill.fee_in_quote()) == (D("0.25"), D("50000.5"), D("-0.25"), D("0.1"))
    assert (fill.order_id, fill.strategy, fill.ts) == ("o-1", "s", NOW)


@pytest.mark.parametrize(("value", "reason"), [
    (None, "empty"), (b"", "empty"), (b"{", "invalid_json"), (b"\xff", "invalid_json"), (b"[1]", "invalid_fill"),
    (json.dumps({**FILL, "qty": "0"}).encode(), "invalid_fill"),
    (json.dumps({**FILL, "symbol": "XBTUSD"}).encode(), "invalid_fill"),
    (json.dumps({**FILL, "ts": "2026-03-02T12:00:00"}).encode(), "invalid_fill"),  # no offset
    (json.dumps({k: v for k, v in FILL.items() if k != "fill_id"}).encode(), "invalid_fill"),
])
def test_bad_fill_messages(value: bytes | None, reason: str) -> None:
    assert parse_message(value) == reason


def test_parse_batch_counts_rejections() -> None:
    fills, rejected = parse_batch([json.dumps(FILL).encode(), b"x", b"x", None])
    assert len(fills) == 1 and rejected == {"invalid_json": 2, "empty": 1}


def test_future_fill_counts_as_now() -> None:
    event = FillEvent.model_validate({**FILL, "ts": (NOW + timedelta(days=3)).isoformat()})
    assert to_fill(event, now=NOW).ts == NOW
