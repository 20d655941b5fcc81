"""The order state machine: the states, the transitions allowed between them, and fills' effect.

::

    pending_new ──> new ──> partially_filled ──> filled
         │  │        │            │  └──────────> canceled / expired
         │  │        └────────────┴─────────────> canceled / expired / filled
         │  └──> partially_filled / filled / canceled / expired   (venue events before the ack)
         └─────> rejected

``filled``, ``canceled``, ``rejected`` and ``expired`` are terminal. A repeated
state (``partially_filled`` after another fill) is not a transition.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final, Literal

State = Literal["pending_new", "new", "partially_filled", "filled", "canceled", "rejected", "expired"]

PENDING_NEW: Final = "pending_new"
NEW: Final = "new"
PARTIALLY_FILLED: Final = "partially_filled"
FILLED: Final = "filled"
CANCELED: Final = "canceled"
REJECTED: Final = "rejected"
EXPIRED: Final = "expired"

STATES: tuple[str, ...] = (PENDING_NEW, NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED)
TERMINAL: frozenset[str] = frozenset({FILLED, CANCELED, REJECTED, EXPIRED})
OPEN: frozenset[str] = frozenset({PENDING_NEW, NEW, PARTIALLY_FILLED})

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING_NEW: frozenset({NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED}),
    NEW: frozenset({PARTIALLY_FILLED, FILLED, CANCELED, EXPIRED}),
    PARTIALLY_FILLED: frozenset({FILLED, CANCELED, EXPIRED}),
    FILLED: frozenset(),
    CANCELED: frozenset(),
    REJECTED: frozenset(),
    EXPIRED: frozenset(),
}


class InvalidTransition(ValueError):
    """A transition the state machine does not allow."""

    def __init__(self, current: str, target: str) -> None:
        super().__init__(f"an order cannot go from {current} to {target}")
        self.current = current
        self.target = target


def can_transition(current: str, target: str) -> bool:
    """True when ``current -> target`` is a transition the machine allows."""
    return target in TRANSITIONS.get(current, frozenset())


def check_transition(current: str, target: str) -> None:
    """Raise :class:`InvalidTransition` unless ``current -> target`` is allowed."""
    if not can_transition(current, target):
        raise InvalidTransition(current, target)


def is_terminal(state: str) -> bool:
    """True for filled, canceled, rejected and expired."""
    return state in TERMINAL


def state_after_fill(current: str, qty: Decimal, filled_qty: Decimal) -> str:
    """The state once ``filled_qty`` of ``qty`` is executed (a terminal state stays as it is).

    A fill reported for a cancelled or expired order (the venue filled it just
    before the cancel took effect) changes quantities, not the state.
    """
    if current in TERMINAL:
        return current
    if filled_qty >= qty:
        return FILLED
    if filled_qty > 0:
        return PARTIALLY_FILLED
    return current


#: Kraken REST order ``status`` -> the OMS state it implies (partial fills refine ``open``).
VENUE_STATUS = {"pending": PENDING_NEW, "open": NEW, "closed": FILLED, "canceled": CANCELED, "expired": EXPIRED}


def state_from_venue(status: str, vol: Decimal, vol_exec: Decimal) -> str | None:
    """The OMS state of an order the venue reports with ``status`` and ``vol_exec`` of ``vol`` (None: unknown)."""
    state = VENUE_STATUS.get(status)
    if state == NEW and vol_exec > 0:
        return FILLED if vol_exec >= vol else PARTIALLY_FILLED
    if state == FILLED and vol_exec < vol:
        # Kraken closes an order only when nothing remains; a short 'closed' is treated as canceled.
        return CANCELED
    return state

