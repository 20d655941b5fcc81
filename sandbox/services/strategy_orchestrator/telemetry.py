"""strategy-orchestrator's own Prometheus instruments (in the app's registry, via the kit)."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import FastAPI
from prometheus_client import Counter, Gauge

from sandbox.services.kit.metrics import counter, gauge
from sandbox.services.strategy_orchestrator.machine import STATES


@dataclass
class Metrics:
    """Counters of transitions, refused actions, workflow steps and workflows; a gauge of strategies per state."""

    transitions: Counter
    rejected: Counter
    steps: Counter
    workflows: Counter
    states: Gauge

    @classmethod
    def register(cls, app: FastAPI) -> Metrics:
        """Create (once) the instruments in ``app``'s registry."""
        return cls(
            transitions=counter(app, "strategy_transitions_total", "Lifecycle transitions made by this replica.",
                                ["action", "from_state", "to_state"]),
            rejected=counter(app, "strategy_actions_rejected_total",
                             "Lifecycle actions refused (invalid_transition, strategy_not_found).", ["action", "code"]),
            steps=counter(app, "strategy_workflow_steps_total", "Workflow step attempts by outcome.",
                          ["workflow", "step", "outcome"]),
            workflows=counter(app, "strategy_workflows_total",
                              "Workflows ended by this replica (succeeded, failed; lost = cancelled or taken over).",
                              ["workflow", "status"]),
            states=gauge(app, "strategy_strategies", "Strategies per lifecycle state (this replica's cache).",
                         ["state"]),
        )

    def set_states(self, counts: dict[str, int]) -> None:
        """Publish the per-state counts (every state, zeros included)."""
        for state in STATES:
            self.states.labels(state).set(counts.get(state, 0))
