"""``/v1/strategies``: the registry (targets), capital reads, and ``allocate`` / ``release`` for the orchestrator.

``GET .../capital`` is the hot read of the OMS and risk: served from this
replica's cache as pre-rendered JSON, no database round trip.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Response

from sandbox.services.capital_allocator import allocations, repository
from sandbox.services.capital_allocator.models import (
    STRATEGY_PATTERN,
    ActionRequest,
    CapitalPublic,
    StrategyActionPublic,
    StrategyList,
    StrategyPublic,
    TargetWrite,
)
from sandbox.services.capital_allocator.state import Allocator, AllocatorState, get_sync
from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles

router = APIRouter(prefix="/v1/strategies", tags=["strategies"])

JSON = "application/json"
StrategyPath = Annotated[str, Path(pattern=STRATEGY_PATTERN, max_length=64, description="Strategy id")]
Writer = Annotated[Principal, Depends(require_roles("risk-officer"))]
Orchestrator = Annotated[Principal, Depends(require_roles("risk-officer", "service"))]
_404 = {404: {"description": "Unknown strategy"}}
_409 = {409: {"description": "No NAV set, or the targets are infeasible (infeasible_minimums / infeasible_bounds)"}}


def _strategy(state: AllocatorState, strategy: str) -> StrategyPublic:
    found = state.cache.strategies.get(strategy)
    if found is None:
        raise repository.strategy_not_found(strategy)
    return found.public(state.cache.currency)


@router.get("", response_model=StrategyList, summary="Every registered strategy (any role)")
async def list_strategies(state: Allocator, _who: CurrentPrincipal) -> StrategyList:
    """Targets and capital of every strategy, ordered by id."""
    currency = state.cache.currency
    items = [state.cache.strategies[s].public(currency) for s in sorted(state.cache.strategies)]
    return StrategyList(items=items, count=len(items))


@router.get("/{strategy}", response_model=StrategyPublic, summary="One strategy (any role)", responses=_404)
async def get_strategy(strategy: StrategyPath, state: Allocator, _who: CurrentPrincipal) -> StrategyPublic:
    """Target and capital of one strategy."""
    return _strategy(state, strategy)


@router.get("/{strategy}/capital", response_model=CapitalPublic, summary="Capital of a strategy (any role)",
            responses=_404)
async def get_capital(strategy: StrategyPath, state: Allocator, _who: CurrentPrincipal) -> Response:
    """``allocated``, ``reserved`` by open orders and ``available = allocated - reserved``, from memory."""
    body = state.cache.capital_json(strategy)
    if body is None:
        raise repository.strategy_not_found(strategy)
    return Response(body, media_type=JSON)


@router.put("/{strategy}/target", response_model=StrategyPublic, status_code=200,
            summary="Register a strategy or replace its target (admin, risk-officer)",
            responses={201: {"model": StrategyPublic, "description": "Registered"}})
async def put_target(
    strategy: StrategyPath, body: TargetWrite, state: Allocator, who: Writer, response: Response
) -> StrategyPublic:
    """Weight and bounds; a new strategy starts inactive. Allocations follow at the next run."""
    row, created = await repository.put_target(state.pool, strategy, body, who.subject)
    get_sync(state).local(row)
    if created:
        response.status_code = 201
    return row.public(state.cache.currency)


@router.delete("/{strategy}", status_code=204, summary="Unregister a strategy (admin, risk-officer)",
               responses={**_404, 409: {"description": "Active, or has open reservations"}})
async def delete_strategy(strategy: StrategyPath, state: Allocator, _who: Writer) -> Response:
    """Only an inactive strategy without open reservations; its history stays."""
    version = await repository.delete_strategy(state.pool, strategy)
    get_sync(state).local_delete(strategy, version)
    return Response(status_code=204)


async def _action(
    trigger: str, strategy: str, state: AllocatorState, who: Principal, body: ActionRequest | None
) -> StrategyActionPublic:
    try:
        run = await allocations.run_allocation(
            state.pool, trigger=trigger, actor=who, strategy=strategy, reason=body.reason if body else None
        )
    except Exception as exc:
        state.metrics.allocations.labels(trigger, getattr(exc, "code", "error")).inc()
        raise
    state.metrics.allocations.labels(trigger, "ok" if run.rebalanced else "not_rebalanced").inc()
    await get_sync(state).reload("local")
    return StrategyActionPublic(capital=_strategy(state, strategy), allocation=run)


@router.post("/{strategy}/allocate", response_model=StrategyActionPublic,
             summary="Activate a strategy and rebalance (admin, risk-officer, service)", responses={**_404, **_409})
async def allocate_strategy(
    strategy: StrategyPath, state: Allocator, who: Orchestrator,
    body: Annotated[ActionRequest | None, Body()] = None,
) -> StrategyActionPublic:
    """Called by the strategy-orchestrator when it starts a strategy: allocations per current targets."""
    return await _action("allocate", strategy, state, who, body)


@router.post("/{strategy}/release", response_model=StrategyActionPublic,
             summary="Deactivate a strategy and rebalance the rest (admin, risk-officer, service)",
             responses={**_404, 409: {"description": "No NAV set"}})
async def release_strategy(
    strategy: StrategyPath, state: Allocator, who: Orchestrator,
    body: Annotated[ActionRequest | None, Body()] = None,
) -> StrategyActionPublic:
    """Called when a strategy stops: its capital goes to 0 and the others are rebalanced when feasible."""
    return await _action("release", strategy, state, who, body)
