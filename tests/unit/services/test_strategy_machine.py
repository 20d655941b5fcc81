"""The strategy lifecycle state machine: the whole table, checked cell by cell."""

from __future__ import annotations

import itertools

import pytest

from sandbox.services.strategy_orchestrator.machine import (
    ACTION_TABLE,
    ACTIONS,
    CAPITAL_EDITABLE_STATES,
    EDITABLE_STATES,
    STATES,
    VALID_TRANSITIONS,
    WORKFLOW_TABLE,
    allowed_actions,
    is_valid,
    target_of,
    workflow_for,
)

#: The expected table: (state, action) -> new state; every pair not listed is refused.
EXPECTED = {
    ("registered", "start"): "starting",
    ("stopped", "start"): "starting",
    ("failed", "start"): "starting",
    ("running", "pause"): "paused",
    ("paused", "resume"): "running",
    ("running", "stop"): "stopping",
    ("paused", "stop"): "stopping",
    ("failed", "stop"): "stopping",
    ("starting", "fail"): "failed",
    ("running", "fail"): "failed",
    ("paused", "fail"): "failed",
    ("stopping", "fail"): "failed",
}


@pytest.mark.parametrize(("state", "action"), list(itertools.product(STATES, ACTIONS)))
def test_every_state_and_action(state: str, action: str) -> None:
    assert target_of(state, action) == EXPECTED.get((state, action))  # type: ignore[arg-type]


def test_the_valid_transitions_are_the_actions_plus_the_workflow_outcomes() -> None:
    workflow_pairs = {("starting", "running"), ("starting", "failed"), ("stopping", "stopped"), ("stopping", "failed")}
    assert VALID_TRANSITIONS == {(s, t) for (s, _), t in EXPECTED.items()} | workflow_pairs
    for src, dst in itertools.product(STATES, STATES):
        assert is_valid(src, dst) == ((src, dst) in VALID_TRANSITIONS)
    assert is_valid(None, "registered") and not is_valid(None, "running")


def test_nothing_leads_back_to_registered_and_only_workflows_reach_running_stopped() -> None:
    assert not any(dst == "registered" for _, dst in VALID_TRANSITIONS)
    assert {src for src, dst in VALID_TRANSITIONS if dst == "stopped"} == {"stopping"}
    # running is reached by the start workflow or by resume, never directly by start
    assert {src for src, dst in VALID_TRANSITIONS if dst == "running"} == {"starting", "paused"}
    assert target_of("registered", "start") != "running"


def test_every_state_is_reachable_from_registered() -> None:
    seen, frontier = {"registered"}, ["registered"]
    while frontier:
        src = frontier.pop()
        for a, b in VALID_TRANSITIONS:
            if a == src and b not in seen:
                seen.add(b)
                frontier.append(b)
    assert seen == set(STATES)


def test_allowed_actions_list_what_the_409_names() -> None:
    assert [(a.action, a.to) for a in allowed_actions("registered")] == [("start", "starting")]
    assert [(a.action, a.to) for a in allowed_actions("running")] == [
        ("pause", "paused"), ("stop", "stopping"), ("fail", "failed")]
    assert [(a.action, a.to) for a in allowed_actions("failed")] == [("start", "starting"), ("stop", "stopping")]
    assert [a.action for a in allowed_actions("starting")] == ["fail"]
    assert [a.action for a in allowed_actions("stopping")] == ["fail"]
    assert [a.action for a in allowed_actions("stopped")] == ["start"]
    for state in STATES:
        assert {a.action for a in allowed_actions(state)} == {a for a in ACTIONS if state in ACTION_TABLE[a]}


def test_workflows_run_in_starting_and_stopping() -> None:
    assert {s: workflow_for(s) for s in STATES if workflow_for(s)} == {"starting": "start", "stopping": "stop"}
    assert WORKFLOW_TABLE["start"] == {"succeeded": ("starting", "running"), "failed": ("starting", "failed")}
    assert WORKFLOW_TABLE["stop"] == {"succeeded": ("stopping", "stopped"), "failed": ("stopping", "failed")}


def test_editable_states() -> None:
    assert EDITABLE_STATES == {"registered", "paused", "stopped", "failed"}
    assert CAPITAL_EDITABLE_STATES == {"registered", "stopped", "failed"}
    assert not ({"running", "starting", "stopping"} & EDITABLE_STATES)
