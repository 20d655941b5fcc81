"""Request models of strategy-orchestrator: strict bodies, bounded fields, exact decimals."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from sandbox.services.strategy_orchestrator.models import (
    CapitalTarget,
    StrategyCreate,
    StrategyUpdate,
    TransitionPublic,
    TransitionRequest,
)


def body(**overrides: Any) -> dict[str, Any]:
    """A valid registration body."""
    out: dict[str, Any] = {
        "id": "mm-1", "name": "Market maker", "kind": "market_making", "params": {"a": 1},
        "accounts": ["acct-1"], "symbols": ["XBT/USD"], "capital": {"weight": "1"},
    }
    out.update(overrides)
    return out


def test_a_valid_registration() -> None:
    created = StrategyCreate.model_validate(body(capital={"weight": 2, "min_capital": "10.5", "max_weight": "0.25"}))
    assert created.capital.weight == Decimal(2) and created.capital.min_capital == Decimal("10.5")
    assert created.capital.wire() == {"weight": "2", "min_capital": "10.5", "max_capital": None,
                                      "min_weight": None, "max_weight": "0.25"}
    assert StrategyCreate.model_validate({**body(), "params": {}}).params == {}


@pytest.mark.parametrize(
    "overrides",
    [
        {"id": ""}, {"id": "-x"}, {"id": "a" * 65}, {"id": "a b"}, {"id": "a/b"},
        {"name": ""}, {"name": "  "}, {"name": "a\nb"}, {"name": "x" * 129},
        {"kind": "Market"}, {"kind": "9x"}, {"kind": ""},
        {"accounts": []}, {"accounts": ["a", "a"]}, {"accounts": ["bad account"]}, {"accounts": [f"a{i}" for i in range(33)]},
        {"symbols": []}, {"symbols": ["XBTUSD"]}, {"symbols": ["XBT/USD", "XBT/USD"]},
        {"params": [1]}, {"params": {"a": float("nan")}},
        {"capital": {}}, {"capital": {"weight": "-1"}}, {"capital": {"weight": "1e7"}},
        {"capital": {"weight": "1", "min_capital": "5", "max_capital": "4"}},
        {"capital": {"weight": "1", "min_weight": "0.5", "max_weight": "0.4"}},
        {"capital": {"weight": "1", "max_weight": "1.5"}},
        {"capital": {"weight": "1", "min_capital": "0.000000001"}},
        {"capital": {"weight": "NaN"}}, {"capital": {"weight": "Infinity"}},
        {"capital": {"weight": "1", "extra": 1}},
        {"state": "running"},
    ],
)
def test_bad_registrations(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        StrategyCreate.model_validate(body(**overrides))


def test_updates_need_a_field_and_no_nulls() -> None:
    assert StrategyUpdate.model_validate({"params": {"x": 1}}).model_fields_set == {"params"}
    for bad in ({}, {"name": None}, {"capital": None}, {"id": "other"}, {"state": "running"}):
        with pytest.raises(ValidationError):
            StrategyUpdate.model_validate(bad)


def test_reason_is_bounded_printable_text() -> None:
    assert TransitionRequest.model_validate({}).reason is None
    assert TransitionRequest.model_validate({"reason": "because"}).reason == "because"
    for bad in ({"reason": "x" * 501}, {"reason": "a\x00"}, {"why": "x"}):
        with pytest.raises(ValidationError):
            TransitionRequest.model_validate(bad)


def test_capital_decimals_are_exact_strings() -> None:
    target = CapitalTarget.model_validate({"weight": "0.10000000", "min_capital": 100, "max_capital": "1e3"})
    assert target.wire()["weight"] == "0.10000000" and target.wire()["max_capital"] == "1000"


def test_transitions_serialise_from_and_to() -> None:
    item = TransitionPublic.model_validate({
        "id": 1, "strategy": "s", "from": None, "to": "registered", "action": "register", "who": "u",
        "who_kind": "user", "when": "2026-01-01T00:00:00Z", "reason": None, "workflow_id": None,
    })
    dumped = item.model_dump(mode="json", by_alias=True)
    assert dumped["from"] is None and dumped["to"] == "registered"
