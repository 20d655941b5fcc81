"""Budgets: the budget policy of the spec applied to one component.

The seed documents requests for some components, limits for others, both for a
few and neither for some.  :func:`budget_of` turns those figures into one
enforced limit and one effective request per resource dimension, following the
rules written once in ``platform.yaml`` (``budget_policy``), and records which
rule applied so that every screen can say where a figure came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sandbox.spec.models import Component


class Basis(StrEnum):
    """Which documented figures a dimension's budget rests on."""

    REQUEST_AND_LIMIT = "request and limit documented"
    REQUEST_ONLY = "only a request documented"
    LIMIT_ONLY = "only a limit documented"
    SANDBOX = "neither documented: sandbox-assigned"


@dataclass(frozen=True)
class DimensionBudget:
    """The budget of one resource dimension (CPU in millicores or memory in MiB)."""

    request: int
    """What nominal load must stay within."""
    limit: int
    """What the runtimes enforce and peak load must stay within."""
    basis: Basis
    """Which rule of the budget policy produced it."""

    @property
    def documented(self) -> bool:
        """False when the sandbox assigned the figure."""
        return self.basis is not Basis.SANDBOX


@dataclass(frozen=True)
class Budget:
    """A component's per-replica budget."""

    cpu_m: DimensionBudget
    memory_mib: DimensionBudget


class BudgetUndefined(ValueError):
    """A dimension has neither a documented figure nor a sandbox budget."""


def _dimension(request: int | None, limit: int | None, assigned: int | None, what: str) -> DimensionBudget:
    if request is not None and limit is not None:
        return DimensionBudget(request, limit, Basis.REQUEST_AND_LIMIT)
    if request is not None:
        return DimensionBudget(request, request, Basis.REQUEST_ONLY)
    if limit is not None:
        return DimensionBudget(limit, limit, Basis.LIMIT_ONLY)
    if assigned is not None:
        return DimensionBudget(assigned, assigned, Basis.SANDBOX)
    raise BudgetUndefined(f"no documented {what} figure and no sandbox_budget.{what}")


def budget_of(component: Component) -> Budget:
    """The enforced budget of one replica of ``component``, per the budget policy."""
    return Budget(
        cpu_m=_dimension(component.requests.cpu_m, component.limits.cpu_m, component.sandbox_budget.cpu_m, "cpu_m"),
        memory_mib=_dimension(
            component.requests.memory_mib,
            component.limits.memory_mib,
            component.sandbox_budget.memory_mib,
            "memory_mib",
        ),
    )
