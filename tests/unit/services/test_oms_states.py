"""The order state machine and the position / balance arithmetic of the OMS."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox.services.oms import states
from sandbox.services.oms.positions import Position, apply_fill, balance_deltas

D = Decimal

ALLOWED = {
    ("pending_new", "new"), ("pending_new", "partially_filled"), ("pending_new", "filled"),
    ("pending_new", "canceled"), ("pending_new", "rejected"), ("pending_new", "expired"),
    ("new", "partially_filled"), ("new", "filled"), ("new", "canceled"), ("new", "expired"),
    ("partially_filled", "filled"), ("partially_filled", "canceled"), ("partially_filled", "expired"),
}


@pytest.mark.parametrize("current", states.STATES)
@pytest.mark.parametrize("target", states.STATES)
def test_only_the_documented_transitions_are_allowed(current: str, target: str) -> None:
    assert states.can_transition(current, target) == ((current, target) in ALLOWED)
    if (current, target) in ALLOWED:
        states.check_transition(current, target)
    else:
        with pytest.raises(states.InvalidTransition):
            states.check_transition(current, target)


def test_terminal_states_have_no_way_out() -> None:
    for state in ("filled", "canceled", "rejected", "expired"):
        assert states.is_terminal(state)
        assert not any(states.can_transition(state, t) for t in states.STATES)
    assert not any(states.is_terminal(s) for s in ("pending_new", "new", "partially_filled"))
    assert not states.can_transition("new", "rejected"), "the venue accepted it: it cannot be rejected later"
    assert not states.can_transition("new", "pending_new")


@pytest.mark.parametrize(("current", "filled", "expected"), [
    ("new", D("0.4"), "partially_filled"), ("new", D("1"), "filled"), ("pending_new", D("1.0"), "filled"),
    ("partially_filled", D("0.9"), "partially_filled"), ("canceled", D("1"), "canceled"),
    ("new", D("0"), "new"),
])
def test_state_after_a_fill(current: str, filled: Decimal, expected: str) -> None:
    assert states.state_after_fill(current, D("1"), filled) == expected


@pytest.mark.parametrize(("status", "vol_exec", "expected"), [
    ("pending", "0", "pending_new"), ("open", "0", "new"), ("open", "0.3", "partially_filled"),
    ("closed", "1", "filled"), ("closed", "0.5", "canceled"), ("canceled", "0.2", "canceled"),
    ("expired", "0", "expired"), ("weird", "0", None),
])
def test_state_implied_by_a_venue_report(status: str, vol_exec: str, expected: str | None) -> None:
    assert states.state_from_venue(status, D("1"), D(vol_exec)) == expected


def test_positions_average_cost_and_realised_pnl() -> None:
    pos = apply_fill(Position(), "buy", D("1"), D("100"), D("0.26"))
    pos = apply_fill(pos, "buy", D("1"), D("200"))
    assert (pos.qty, pos.avg_price, pos.fees) == (D("2"), D("150"), D("0.26"))
    pos = apply_fill(pos, "sell", D("0.5"), D("170"))
    assert pos.qty == D("1.5") and pos.avg_price == D("150") and pos.realized_pnl == D("10")
    pos = apply_fill(pos, "sell", D("2.5"), D("140"))  # closes 1.5 (loss 15), opens a 1.0 short at 140
    assert pos.qty == D("-1") and pos.avg_price == D("140") and pos.realized_pnl == D("-5")
    pos = apply_fill(pos, "buy", D("1"), D("130"))
    assert pos.qty == 0 and pos.avg_price == 0 and pos.realized_pnl == D("5")
    assert (pos.bought, pos.sold, pos.fills) == (D("3"), D("3"), 5)


def test_a_fill_quantity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        apply_fill(Position(), "buy", D("0"), D("1"))


def test_balance_deltas_of_buys_and_sells() -> None:
    assert balance_deltas("buy", D("0.5"), D("15000.05"), D("39.00013"), "XXBT", "ZUSD", "ZUSD") == {
        "XXBT": D("0.5"), "ZUSD": D("-15039.05013")}
    assert balance_deltas("sell", D("0.5"), D("15000"), D("0.001"), "XXBT", "ZUSD", "XXBT") == {
        "XXBT": D("-0.501"), "ZUSD": D("15000")}
