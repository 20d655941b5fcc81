"""The allocation algorithm: capital per strategy from a NAV, a cash buffer and targets.

Pure and deterministic (``Decimal`` only, inputs sorted by strategy id, no
clock, no randomness): the same inputs always give the same allocations.

1. **Allocatable capital.** ``A = floor_q(NAV * (1 - cash_buffer_pct / 100))``
   where ``q = 10**-precision`` is the allocation quantum (cents for precision 2).
   Flooring means the buffer kept is never smaller than asked.
2. **Effective bounds** per active strategy, on the grid of ``q``:
   ``lo = ceil_q(max(min_capital, min_weight * A))`` and
   ``hi = floor_q(min(max_capital, max_weight * A, A))`` (absent bounds are
   0 and ``A``). ``lo > hi`` for any strategy is :data:`INFEASIBLE_BOUNDS`;
   ``sum(lo) > A`` is :data:`INFEASIBLE_MINIMUMS` (both 409 at the API).
3. **Proportional split with iterative clamping.** Strategies with weight 0
   are fixed at ``lo``. The rest share what is left, ``R``, in proportion to
   their weights (weights are normalised over the active strategies):
   ``raw_s = R * w_s / sum(w)``. Let ``E`` be the total excess above ``hi``
   and ``S`` the total shortfall below ``lo``. If ``E > S`` the strategies
   above their maximum are fixed at ``hi`` (the split must grow, so they stay
   above it); if ``S > E`` those below their minimum are fixed at ``lo``; if
   equal, both. ``R`` is recomputed without the fixed strategies and the split
   repeats, redistributing the excess or shortfall over the still unclamped
   strategies, until no bound is violated (at most one pass per strategy).
   The result is the unique ``x_s = clamp(lambda * w_s, lo_s, hi_s)`` with
   ``sum(x) = A``; when every strategy sits at its maximum the rest of ``A``
   stays unallocated.
4. **Rounding.** Exact shares are floored to ``q`` and the missing quanta
   (largest remainder method) go one each to the strategies with the largest
   remainders, ties broken by strategy id. So the total is exactly the
   target (``A`` unless all strategies are capped), no strategy leaves its
   bounds, and nothing is ever allocated beyond NAV minus the buffer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Any, Literal

#: Precision of intermediate arithmetic (values are < 1e16 with <= 8 decimals; this is ample).
WORKING_PRECISION = 60
#: Decimal places of the informational ratios (normalised weight, share).
RATIO_PLACES = Decimal("1e-10")

INFEASIBLE_BOUNDS = "infeasible_bounds"
INFEASIBLE_MINIMUMS = "infeasible_minimums"

Binding = Literal["min", "max", "none"]
ZERO = Decimal(0)


class AllocationError(Exception):
    """The targets cannot be satisfied; ``code`` is stable (the API answers 409)."""

    def __init__(self, code: str, message: str, detail: Any = None) -> None:
        """``detail`` is JSON-safe context (amounts as strings)."""
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


@dataclass(frozen=True)
class Target:
    """The target of one active strategy: a weight and optional capital / weight bounds."""

    strategy: str
    weight: Decimal
    min_capital: Decimal = ZERO
    max_capital: Decimal | None = None
    min_weight: Decimal | None = None
    max_weight: Decimal | None = None


@dataclass(frozen=True)
class Inputs:
    """Everything an allocation depends on."""

    nav: Decimal
    cash_buffer_pct: Decimal
    precision: int
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Line:
    """The allocation of one strategy."""

    strategy: str
    weight: Decimal
    normalised_weight: Decimal
    min_capital: Decimal
    max_capital: Decimal
    allocated: Decimal
    binding: Binding
    share: Decimal


@dataclass(frozen=True)
class Result:
    """The allocations of every active strategy plus the totals."""

    nav: Decimal
    cash_buffer_pct: Decimal
    precision: int
    buffer: Decimal
    allocatable: Decimal
    allocated: Decimal
    unallocated: Decimal
    iterations: int
    lines: tuple[Line, ...]

    def by_strategy(self) -> dict[str, Line]:
        """Lines keyed by strategy id."""
        return {line.strategy: line for line in self.lines}


def quantum(precision: int) -> Decimal:
    """The allocation grid step: ``10 ** -precision``."""
    if not 0 <= precision <= 18:
        raise ValueError(f"precision must be 0..18, got {precision}")
    return Decimal(1).scaleb(-precision)


def floor_q(value: Decimal, q: Decimal) -> Decimal:
    """``value`` rounded down to the grid ``q``."""
    return value.quantize(q, rounding=ROUND_FLOOR)


def ceil_q(value: Decimal, q: Decimal) -> Decimal:
    """``value`` rounded up to the grid ``q``."""
    return value.quantize(q, rounding=ROUND_CEILING)


def allocatable_capital(nav: Decimal, cash_buffer_pct: Decimal, q: Decimal) -> Decimal:
    """NAV minus the cash buffer, floored to the grid (so the buffer kept is at least the one asked)."""
    if nav < 0 or not ZERO <= cash_buffer_pct <= 100:
        raise ValueError("nav must be >= 0 and cash_buffer_pct within 0..100")
    with localcontext() as ctx:
        ctx.prec = WORKING_PRECISION
        return max(ZERO, floor_q(nav * (1 - cash_buffer_pct / 100), q))


def effective_bounds(target: Target, allocatable: Decimal, q: Decimal) -> tuple[Decimal, Decimal]:
    """``(lo, hi)`` on the grid: the tighter of the capital and weight bounds, within ``[0, A]``."""
    with localcontext() as ctx:
        ctx.prec = WORKING_PRECISION
        lo = target.min_capital
        if target.min_weight is not None:
            lo = max(lo, target.min_weight * allocatable)
        hi = allocatable
        if target.max_capital is not None:
            hi = min(hi, target.max_capital)
        if target.max_weight is not None:
            hi = min(hi, target.max_weight * allocatable)
        return ceil_q(lo, q), floor_q(hi, q)


def _validate(targets: Iterable[Target]) -> tuple[Target, ...]:
    ordered = tuple(sorted(targets, key=lambda t: t.strategy))
    for prev, cur in zip(ordered, ordered[1:]):
        if prev.strategy == cur.strategy:
            raise ValueError(f"duplicate strategy {cur.strategy!r}")
    for t in ordered:
        if t.weight < 0 or t.min_capital < 0:
            raise ValueError(f"strategy {t.strategy!r}: weight and min_capital must be >= 0")
    return ordered


def _split(
    free: dict[str, Decimal], lo: dict[str, Decimal], hi: dict[str, Decimal], fixed: dict[str, Decimal],
    sides: dict[str, Binding], allocatable: Decimal,
) -> tuple[dict[str, Decimal], int]:
    """Step 3: proportional split with iterative clamping.

    Fills ``fixed`` / ``sides`` with the clamped strategies; returns the unclamped exact shares and the pass count.
    """
    passes = 0
    while free:
        passes += 1
        remaining = allocatable - sum(fixed.values(), ZERO)
        total_weight = sum(free.values(), ZERO)
        raw = {s: remaining * w / total_weight for s, w in free.items()}
        over = {s: raw[s] - hi[s] for s in free if raw[s] > hi[s]}
        under = {s: lo[s] - raw[s] for s in free if raw[s] < lo[s]}
        if not over and not under:
            return raw, passes
        excess, shortfall = sum(over.values(), ZERO), sum(under.values(), ZERO)
        if excess >= shortfall:
            for s in over:
                fixed[s], sides[s] = hi[s], "max"
                del free[s]
        if shortfall >= excess:
            for s in under:
                fixed[s], sides[s] = lo[s], "min"
                del free[s]
    return {}, passes


def _round(
    exact: dict[str, Decimal], hi: dict[str, Decimal], total: Decimal, q: Decimal, order: list[str]
) -> dict[str, Decimal]:
    """Step 4: floor every share to the grid, then hand out the missing quanta by largest remainder."""
    floors = {s: floor_q(x, q) for s, x in exact.items()}
    units = int((total - sum(floors.values(), ZERO)) / q)
    ranked = sorted(order, key=lambda s: (-(exact[s] - floors[s]), s))
    for s in ranked:
        if units <= 0:
            break
        if exact[s] > floors[s] and floors[s] + q <= hi[s]:
            floors[s] += q
            units -= 1
    # Working-precision residue only: any quantum still missing goes to strategies with room, by id.
    for s in order:
        while units > 0 and floors[s] + q <= hi[s]:
            floors[s] += q
            units -= 1
    return floors


def allocate(inputs: Inputs) -> Result:
    """Allocate capital to the active strategies in ``inputs`` (see the module docstring).

    Raises :class:`AllocationError` (``infeasible_bounds`` / ``infeasible_minimums``)
    when the bounds cannot all hold, and ``ValueError`` for malformed inputs.
    """
    q = quantum(inputs.precision)
    targets = _validate(inputs.targets)
    allocatable = allocatable_capital(inputs.nav, inputs.cash_buffer_pct, q)
    with localcontext() as ctx:
        ctx.prec = WORKING_PRECISION
        bounds = {t.strategy: effective_bounds(t, allocatable, q) for t in targets}
        lo = {s: b[0] for s, b in bounds.items()}
        hi = {s: b[1] for s, b in bounds.items()}
        broken = [s for s in lo if lo[s] > hi[s]]
        if broken:
            raise AllocationError(
                INFEASIBLE_BOUNDS,
                f"minimum above maximum for {', '.join(broken)} (allocatable capital {allocatable})",
                {"allocatable": str(allocatable),
                 "strategies": [{"strategy": s, "min_capital": str(lo[s]), "max_capital": str(hi[s])} for s in broken]},
            )
        required = sum(lo.values(), ZERO)
        if required > allocatable:
            raise AllocationError(
                INFEASIBLE_MINIMUMS,
                f"the active strategies' minimums ({required}) exceed the allocatable capital ({allocatable})",
                {"required": str(required), "allocatable": str(allocatable),
                 "minimums": {s: str(v) for s, v in lo.items() if v > 0}},
            )
        fixed = {t.strategy: lo[t.strategy] for t in targets if t.weight == 0}
        sides: dict[str, Binding] = {s: "min" for s in fixed}
        free = {t.strategy: t.weight for t in targets if t.weight > 0}
        unclamped, passes = _split(free, lo, hi, fixed, sides, allocatable)
        exact = {**fixed, **unclamped}
        total = allocatable if unclamped else sum(fixed.values(), ZERO)
        order = [t.strategy for t in targets]
        final = _round(exact, hi, total, q, order)
        weight_sum = sum((t.weight for t in targets), ZERO)
        lines = []
        for t in targets:
            s = t.strategy
            lines.append(Line(
                strategy=s,
                weight=t.weight,
                normalised_weight=(t.weight / weight_sum).quantize(RATIO_PLACES, ROUND_HALF_EVEN) if weight_sum else ZERO,
                min_capital=lo[s],
                max_capital=hi[s],
                allocated=final[s],
                binding=sides.get(s, "none"),
                share=(final[s] / allocatable).quantize(RATIO_PLACES, ROUND_HALF_EVEN) if allocatable else ZERO,
            ))
        allocated = sum(final.values(), ZERO)
    return Result(
        nav=inputs.nav,
        cash_buffer_pct=inputs.cash_buffer_pct,
        precision=inputs.precision,
        buffer=inputs.nav - allocatable,
        allocatable=allocatable,
        allocated=allocated,
        unallocated=allocatable - allocated,
        iterations=passes,
        lines=tuple(lines),
    )
