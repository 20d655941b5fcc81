"""``POST /v1/rebalance`` and ``/v1/allocations``: the current allocations and their history."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query

from sandbox.services.capital_allocator import allocations
from sandbox.services.capital_allocator.models import (
    STRATEGY_PATTERN,
    AllocationHistory,
    AllocationRunPublic,
    CurrentAllocations,
    RebalanceRequest,
)
from sandbox.services.capital_allocator.state import Allocator, get_sync
from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles

router = APIRouter(tags=["allocations"])

Writer = Annotated[Principal, Depends(require_roles("risk-officer"))]
RUN_ID_MAX = 2**62


@router.post("/v1/rebalance", response_model=AllocationRunPublic,
             summary="Allocate capital to the active strategies (admin, risk-officer)",
             responses={409: {"description": "No NAV set, or infeasible targets (infeasible_minimums / infeasible_bounds)"}})
async def rebalance(
    state: Allocator, who: Writer, body: Annotated[RebalanceRequest | None, Body()] = None,
) -> AllocationRunPublic:
    """Compute allocations from the NAV, the buffer and the active strategies' targets; store them with the run."""
    body = body or RebalanceRequest()
    try:
        run = await allocations.run_allocation(
            state.pool, trigger="rebalance", actor=who, reason=body.reason, dry_run=body.dry_run
        )
    except Exception as exc:
        state.metrics.allocations.labels("rebalance", getattr(exc, "code", "error")).inc()
        raise
    state.metrics.allocations.labels("rebalance", "dry_run" if body.dry_run else "ok").inc()
    if not body.dry_run:
        await get_sync(state).reload("local")
    return run


@router.get("/v1/allocations/current", response_model=CurrentAllocations,
            summary="The portfolio and every strategy's capital (any role)")
async def current(state: Allocator, _who: CurrentPrincipal) -> CurrentAllocations:
    """From this replica's cache."""
    cache = state.cache
    allocated, reserved = cache.totals()
    return CurrentAllocations(
        portfolio=cache.portfolio.public() if cache.portfolio else None,
        strategies=[cache.strategies[s].capital(cache.currency) for s in sorted(cache.strategies)],
        allocated=allocated,
        reserved=reserved,
    )


@router.get("/v1/allocations/history", response_model=AllocationHistory,
            summary="Allocation runs, newest first (any role)")
async def history(
    state: Allocator,
    _who: CurrentPrincipal,
    limit: int = Query(50, ge=1, le=500),
    before: int | None = Query(None, ge=1, le=RUN_ID_MAX, description="Only runs with a smaller id (paging)."),
    strategy: str | None = Query(None, pattern=STRATEGY_PATTERN, max_length=64,
                                 description="Only runs that involved this strategy."),
    trigger: Literal["rebalance", "allocate", "release"] | None = Query(None),
) -> AllocationHistory:
    """Who ran each allocation, when, why, with which inputs and outputs."""
    items = await allocations.history(state.pool, limit=limit, before=before, strategy=strategy, trigger=trigger)
    next_before = items[-1].id if len(items) == limit else None
    return AllocationHistory(items=items, next_before=next_before)


@router.get("/v1/allocations/history/{run_id}", response_model=AllocationRunPublic,
            summary="One allocation run (any role)", responses={404: {"description": "Unknown run"}})
async def get_run(
    state: Allocator, _who: CurrentPrincipal, run_id: Annotated[int, Path(ge=1, le=RUN_ID_MAX)],
) -> AllocationRunPublic:
    """One run by id."""
    return await allocations.get_run(state.pool, run_id)
