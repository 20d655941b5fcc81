"""Volatility-scaled position limits: the scaling, the feature server's answer, the rule and its fallbacks."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal as D

import pytest

from sandbox.services.risk.domain import LimitSet, PositionLimit
from sandbox.services.risk.rules import Order, Volatility, VolatilityScaling, evaluate, scale_limit
from sandbox.services.risk.state import RiskState
from sandbox.services.risk.volatility import MISSING, UNAVAILABLE, parse_online_features

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
FEATURE = "symbol_volatility_1m:realised_vol_1m"


def scaling(vol: str | None, reference: str = "0.002", floor: str = "0.1", problem: str | None = None) -> VolatilityScaling:
    value = D(vol) if vol is not None else None
    return VolatilityScaling(D(reference), D(floor), Volatility(value, problem, "why" if problem else ""))


@pytest.mark.parametrize(("vol", "limit", "scaled"), [
    ("0.001", "10", False),  # calmer than the reference: the full limit
    ("0.002", "10", False),  # at the reference
    ("0.004", "5", True),  # twice the reference: half the limit
    ("0.008", "2.5", True),
    ("1", "1", True),  # the floor: never below 10 % of the limit
])
def test_scale_limit(vol: str, limit: str, scaled: bool) -> None:
    result = scale_limit(D(10), scaling(vol))
    assert (result.limit, result.scaled, result.base_limit) == (D(limit), scaled, D(10))
    assert result.volatility == D(vol)


@pytest.mark.parametrize("problem", [MISSING, UNAVAILABLE])
def test_without_a_volatility_the_limit_is_unscaled_and_says_why(problem: str) -> None:
    result = scale_limit(D(10), scaling(None, problem=problem))
    assert (result.limit, result.factor, result.scaled) == (D(10), D(1), False)
    assert result.reason.startswith("unscaled") and problem in result.reason


def test_scaling_off() -> None:
    result = scale_limit(D(10), None)
    assert (result.limit, result.scaled, result.reason) == (D(10), False, "volatility scaling is off")


def answer(value, status: str = "PRESENT") -> dict:
    return {
        "metadata": {"feature_names": ["symbol", "realised_vol_1m"]},
        "results": [
            {"values": ["BTC/USD"], "statuses": ["PRESENT"], "event_timestamps": ["1970-01-01T00:00:00Z"]},
            {"values": [value], "statuses": [status], "event_timestamps": ["2026-07-07T23:01:59Z"]},
        ],
    }


def test_parse_online_features() -> None:
    got = parse_online_features(answer(0.0031), FEATURE)
    assert (got.value, got.problem, got.as_of) == (D("0.0031"), None, "2026-07-07T23:01:59Z")
    assert parse_online_features(answer(None), FEATURE).problem == MISSING  # Feast's answer for an unknown key
    assert parse_online_features(answer(0.1, "NOT_FOUND"), FEATURE).problem == MISSING
    assert parse_online_features(answer(-1.0), FEATURE).problem == MISSING
    assert parse_online_features({"detail": "bad request"}, FEATURE).problem == UNAVAILABLE


def view(max_position: str = "10", qty: str = "0") -> RiskState:
    state = RiskState()
    limit = PositionLimit("acct", "BTC/USD", D(max_position), NOW, "officer")
    state.set_limits(LimitSet({}, {("acct", "BTC/USD"): limit}))
    return state


def test_rule_applies_the_scaled_limit() -> None:
    order = Order("acct", "BTC/USD", "buy", D(6), D(100))
    calm = evaluate(order, view(), today=NOW.date(), volatility=scaling("0.001"))
    assert calm.allowed and calm.position_limit is not None and calm.position_limit.limit == D(10)
    wild = evaluate(order, view(), today=NOW.date(), volatility=scaling("0.004"))
    (violation,) = wild.violations
    assert violation.code == "position_limit_exceeded"
    assert violation.detail["limit"] == "5" and violation.detail["scaling"]["scaled"] is True
    assert "volatility 0.004" in violation.message


def test_rule_falls_back_to_the_unscaled_limit() -> None:
    order = Order("acct", "BTC/USD", "buy", D(11), D(100))
    result = evaluate(order, view(), today=NOW.date(), volatility=scaling(None, problem=UNAVAILABLE))
    (violation,) = result.violations
    assert violation.detail["limit"] == "10"
    assert UNAVAILABLE in violation.detail["scaling"]["reason"]
    assert evaluate(Order("acct", "BTC/USD", "buy", D(9), D(100)), view(), today=NOW.date(),
                    volatility=scaling(None, problem=UNAVAILABLE)).allowed
