"""Request/response models: strict validation, Decimal in, plain decimal strings out."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from sandbox.services.fees.consumer import parse_batch, parse_message
from sandbox.services.fees.models import (
    EstimateRequest,
    FillCreate,
    FillEvent,
    ScheduleCreate,
    SchedulePublic,
    TierPublic,
)

NOW = datetime.now(timezone.utc)


def estimate(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {"account": "acct-1", "symbol": "XBT/USD", "side": "buy", "qty": "0.5", "price": "50000"}
    body.update(overrides)
    return body


def fill(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "fill_id": "f-1", "account": "acct-1", "symbol": "XBT/USD", "side": "buy", "qty": "0.5",
        "price": "50000", "fee": "65", "liquidity": "taker", "ts": NOW.isoformat(),
    }
    body.update(overrides)
    return body


def test_limit_estimate_defaults() -> None:
    req = EstimateRequest.model_validate(estimate(symbol="xbt/usd"))
    assert req.symbol == "XBT/USD"
    assert (req.order_type, req.liquidity) == ("limit", "taker")
    assert req.qty == Decimal("0.5")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"price": None}, "a limit order needs a price"),
        ({"reference_price": "1"}, "reference_price is only for market orders"),
        ({"order_type": "market", "price": None}, "needs a price or a reference_price"),
        ({"order_type": "market", "liquidity": "maker"}, "market order takes liquidity"),
        ({"qty": "0"}, "greater than 0"),
        ({"qty": "-1"}, "greater than 0"),
        ({"qty": "NaN"}, ""),
        ({"qty": "Infinity"}, ""),
        ({"price": "1E+13"}, "less than or equal"),
        ({"qty": "0.0000000000000000001"}, "decimal places"),
        ({"side": "short"}, ""),
        ({"liquidity": "both"}, ""),
        ({"symbol": "XBT/USD/EUR"}, "pattern"),
        ({"symbol": "XBT USD"}, "pattern"),
        ({"account": ""}, "pattern"),
        ({"account": "a" * 65}, ""),
        ({"account": "bad\x00id"}, "pattern"),
        ({"extra": 1}, "Extra inputs are not permitted"),
        ({"qty": True}, ""),
    ],
)
def test_estimate_request_rejects(overrides: dict[str, object], message: str) -> None:
    body = estimate(**overrides)
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(ValidationError, match=message or None):
        EstimateRequest.model_validate(body)


def test_market_order_priced_by_reference() -> None:
    req = EstimateRequest.model_validate(estimate(order_type="market", price=None, reference_price="123.45") | {})
    assert req.price is None and req.reference_price == Decimal("123.45")


def test_json_numbers_become_exact_decimals() -> None:
    req = EstimateRequest.model_validate_json('{"account":"a","symbol":"ETH/USD","side":"sell","qty":0.1,"price":0.3}')
    assert req.qty == Decimal("0.1") and req.price == Decimal("0.3")


def test_schedule_create_valid_and_maker_default() -> None:
    body = ScheduleCreate.model_validate({"quote": "zusd", "quote_decimals": 5, "fees": [[0, "0.4"], [10000, 0.35]]})
    schedule = body.to_schedule("XBT/USD")
    assert schedule.quote == "USD" and schedule.source == "manual"
    assert schedule.maker == schedule.taker
    assert schedule.taker[1].percent == Decimal("0.35")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"fees": [[5, "0.4"]]}, "first tier must start at volume 0"),
        ({"fees": [[0, "0.4"], [0, "0.3"]]}, "strictly increase"),
        ({"fees_maker": [[1, "0.1"]]}, "first tier must start at volume 0"),
        ({"fees": []}, "at least 1"),
        ({"fees": [[0, "101"]]}, "less than or equal to 100"),
        ({"quote_decimals": 19}, "less than or equal to 18"),
        ({"quote": "U$D"}, "pattern"),
        ({"fees": [[0, "0.4", 1]]}, ""),
        ({"unknown": True}, "Extra inputs"),
    ],
)
def test_schedule_create_rejects(overrides: dict[str, object], message: str) -> None:
    body = {"quote": "USD", "quote_decimals": 2, "fees": [[0, "0.26"]], **overrides}
    with pytest.raises(ValidationError, match=message or None):
        ScheduleCreate.model_validate(body)


def test_public_models_render_plain_decimal_strings() -> None:
    schedule = ScheduleCreate.model_validate(
        {"quote": "USD", "quote_decimals": 2, "fees": [[0, "0.26"], ["1E+5", "0.22"]]}
    ).to_schedule("XBT/USD")
    doc = json.loads(SchedulePublic.of(schedule).model_dump_json())
    assert doc["fees"] == [["0", "0.26"], ["100000", "0.22"]]
    tier = TierPublic(index=0, volume=Decimal("1E+4"), percent=Decimal("0.40"), next_volume=None,
                      next_percent=None, volume_to_next=None)
    assert json.loads(tier.model_dump_json())["volume"] == "10000"


def test_fill_requires_timezone_and_plausible_time() -> None:
    FillCreate.model_validate(fill())
    with pytest.raises(ValidationError, match="timezone"):
        FillCreate.model_validate(fill(ts="2026-01-01T00:00:00"))
    with pytest.raises(ValidationError, match="future"):
        FillCreate.model_validate(fill(ts=(NOW + timedelta(hours=1)).isoformat()))
    with pytest.raises(ValidationError, match="2009"):
        FillCreate.model_validate(fill(ts="2001-01-01T00:00:00Z"))


def test_fill_time_is_normalised_to_utc() -> None:
    parsed = FillCreate.model_validate(fill(ts="2026-01-01T02:00:00+02:00"))
    assert parsed.ts == datetime(2026, 1, 1, tzinfo=timezone.utc) and parsed.ts.utcoffset() == timedelta(0)


def test_http_fill_forbids_extras_but_kafka_event_ignores_them() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        FillCreate.model_validate(fill(order_id="o-1"))
    assert FillEvent.model_validate(fill(order_id="o-1")).fill_id == "f-1"


def test_kafka_message_parsing() -> None:
    good = json.dumps(fill(qty=0.1)).encode()
    parsed = parse_message(good)
    assert isinstance(parsed, FillEvent) and parsed.qty == Decimal("0.1")
    assert parse_message(b"{not json") == "invalid_json"
    assert parse_message(b"[1, 2]") == "invalid_fill"
    assert parse_message(json.dumps(fill(qty="-1")).encode()) == "invalid_fill"
    assert parse_message(None) == "empty"
    batch = parse_batch([good, b"x", b"", json.dumps(fill(side="hold")).encode()])
    assert len(batch.fills) == 1
    assert batch.rejected == {"invalid_json": 1, "empty": 1, "invalid_fill": 1}
