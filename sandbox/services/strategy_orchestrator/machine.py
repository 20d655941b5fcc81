"""The strategy lifecycle state machine: states, the actions callers may take, and the valid transitions.

Pure data and functions (no I/O), so the whole table is unit-tested.

Callers act with ``start``, ``pause``, ``resume``, ``stop`` and ``fail``; the
orchestrator itself completes its workflows (``starting`` -> ``running`` once
capital is allocated, ``stopping`` -> ``stopped`` once orders are cancelled and
capital released, either -> ``failed`` when a step is refused or a dependency
stays unreachable). ``failed`` is not terminal: a failed strategy may be
started again, or stopped to cancel its orders and release its capital.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

State = Literal["registered", "starting", "running", "paused", "stopping", "stopped", "failed"]
Action = Literal["start", "pause", "resume", "stop", "fail"]

STATES: tuple[State, ...] = ("registered", "starting", "running", "paused", "stopping", "stopped", "failed")
ACTIONS: tuple[Action, ...] = ("start", "pause", "resume", "stop", "fail")

#: What each caller action does, per state it is allowed from.
ACTION_TABLE: dict[Action, dict[State, State]] = {
    "start": {"registered": "starting", "stopped": "starting", "failed": "starting"},
    "pause": {"running": "paused"},
    "resume": {"paused": "running"},
    "stop": {"running": "stopping", "paused": "stopping", "failed": "stopping"},
    "fail": {"starting": "failed", "running": "failed", "paused": "failed", "stopping": "failed"},
}

#: Transitions the orchestrator makes when a workflow ends (``workflow kind`` -> outcome -> (from, to)).
WORKFLOW_TABLE: dict[str, dict[str, tuple[State, State]]] = {
    "start": {"succeeded": ("starting", "running"), "failed": ("starting", "failed")},
    "stop": {"succeeded": ("stopping", "stopped"), "failed": ("stopping", "failed")},
}

#: States in which a workflow runs (entering one starts it; leaving one ends or cancels it).
WORKFLOW_STATES: dict[State, str] = {"starting": "start", "stopping": "stop"}

#: Every valid (from, to) pair: the caller actions plus the workflow outcomes.
VALID_TRANSITIONS: frozenset[tuple[State, State]] = frozenset(
    {(src, dst) for table in ACTION_TABLE.values() for src, dst in table.items()}
    | {pair for outcomes in WORKFLOW_TABLE.values() for pair in outcomes.values()}
)

#: States in which the definition (params, accounts, symbols, name) may change: not while live or in a workflow.
EDITABLE_STATES: frozenset[State] = frozenset({"registered", "paused", "stopped", "failed"})
#: States in which the capital target may change (it is sent to capital-allocator at the next start).
CAPITAL_EDITABLE_STATES: frozenset[State] = frozenset({"registered", "stopped", "failed"})


@dataclass(frozen=True)
class AllowedAction:
    """An action valid from some state, and the state it leads to."""

    action: Action
    to: State


def allowed_actions(state: State) -> list[AllowedAction]:
    """The caller actions valid from ``state``, in :data:`ACTIONS` order."""
    return [AllowedAction(a, ACTION_TABLE[a][state]) for a in ACTIONS if state in ACTION_TABLE[a]]


def target_of(state: State, action: Action) -> State | None:
    """The state ``action`` leads to from ``state``, or ``None`` when it is not allowed."""
    return ACTION_TABLE[action].get(state)


def is_valid(src: State | None, dst: State) -> bool:
    """Whether ``src`` -> ``dst`` is a transition of the machine (``None`` -> ``registered`` is registration)."""
    if src is None:
        return dst == "registered"
    return (src, dst) in VALID_TRANSITIONS


def workflow_for(state: State) -> str | None:
    """The workflow kind that runs while a strategy is in ``state`` (``start``/``stop``), else ``None``."""
    return WORKFLOW_STATES.get(state)
