"""``/v1/strategies/{id}/start|pause|resume|stop|fail``, ``/transitions`` and ``/workflows``.

An action is checked against the state machine under the strategy's row lock
and answers 409 ``invalid_transition`` (with the allowed actions) when the
current state does not allow it. ``start`` and ``stop`` answer 202: the
strategy is ``starting`` / ``stopping`` and a workflow finishes the job in
the background (follow it on ``GET /v1/strategies/{id}`` or ``/workflows``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles
from sandbox.services.kit.deps import Db
from sandbox.services.kit.errors import ServiceError
from sandbox.services.strategy_orchestrator import repository
from sandbox.services.strategy_orchestrator.machine import Action
from sandbox.services.strategy_orchestrator.models import (
    STRATEGY_PATTERN,
    StrategyPublic,
    TransitionList,
    TransitionRequest,
    WorkflowList,
)
from sandbox.services.strategy_orchestrator.state import Service, ServiceState

router = APIRouter(prefix="/v1/strategies", tags=["lifecycle"])

StrategyPath = Annotated[str, Path(pattern=STRATEGY_PATTERN, max_length=64, description="Strategy id")]
Operator = Annotated[Principal, Depends(require_roles("trader", "service"))]
Reason = Annotated[TransitionRequest | None, Body()]
_RESPONSES = {
    404: {"description": "Unknown strategy (strategy_not_found)"},
    409: {"description": "Not allowed from the current state (invalid_transition; detail.allowed lists the "
                         "actions that are)"},
}


async def _act(
    action: Action, strategy_id: str, db: Db, state: ServiceState, who: Principal, body: TransitionRequest | None,
    response: Response,
) -> StrategyPublic:
    orchestrator = state.orchestrator
    assert orchestrator is not None and state.sync is not None
    try:
        row, workflow_id, src = await repository.apply_action(
            db, strategy_id, action, who, body.reason if body else None,
            owner=orchestrator.owner, lease_s=state.settings.lease_s,
        )
    except ServiceError as exc:
        state.metrics.rejected.labels(action, exc.code).inc()
        raise
    public = state.sync.local(row)
    state.metrics.transitions.labels(action, src, public.state).inc()
    if workflow_id is not None:
        orchestrator.spawn(workflow_id, strategy_id, "start" if public.state == "starting" else "stop")
        response.status_code = 202
    response.headers["ETag"] = f'"{public.version}"'
    return public


@router.post("/{strategy_id}/start", response_model=StrategyPublic, status_code=202, responses=_RESPONSES,
             summary="Start: registered, stopped or failed -> starting (admin, trader, service)")
async def start(strategy_id: StrategyPath, db: Db, state: Service, who: Operator, response: Response,
                body: Reason = None) -> StrategyPublic:
    """Asks capital-allocator for capital in the background: ``running`` once allocated, else ``failed``."""
    return await _act("start", strategy_id, db, state, who, body, response)


@router.post("/{strategy_id}/pause", response_model=StrategyPublic, responses=_RESPONSES,
             summary="Pause: running -> paused (admin, trader, service)")
async def pause(strategy_id: StrategyPath, db: Db, state: Service, who: Operator, response: Response,
                body: Reason = None) -> StrategyPublic:
    """The strategy keeps its capital and orders; it resumes with ``resume``."""
    return await _act("pause", strategy_id, db, state, who, body, response)


@router.post("/{strategy_id}/resume", response_model=StrategyPublic, responses=_RESPONSES,
             summary="Resume: paused -> running (admin, trader, service)")
async def resume(strategy_id: StrategyPath, db: Db, state: Service, who: Operator, response: Response,
                 body: Reason = None) -> StrategyPublic:
    """Back to ``running``."""
    return await _act("resume", strategy_id, db, state, who, body, response)


@router.post("/{strategy_id}/stop", response_model=StrategyPublic, status_code=202, responses=_RESPONSES,
             summary="Stop: running, paused or failed -> stopping (admin, trader, service)")
async def stop(strategy_id: StrategyPath, db: Db, state: Service, who: Operator, response: Response,
               body: Reason = None) -> StrategyPublic:
    """Asks oms-service to cancel the strategy's open orders and capital-allocator to release its capital,
    in the background: ``stopped`` once both are done, else ``failed``."""
    return await _act("stop", strategy_id, db, state, who, body, response)


@router.post("/{strategy_id}/fail", response_model=StrategyPublic, responses=_RESPONSES,
             summary="Mark failed: starting, running, paused or stopping -> failed (admin, trader, service)")
async def fail(strategy_id: StrategyPath, db: Db, state: Service, who: Operator, response: Response,
               body: Reason = None) -> StrategyPublic:
    """Cancels a running start/stop workflow. A failed strategy can be started again or stopped
    (which cancels its orders and releases its capital)."""
    return await _act("fail", strategy_id, db, state, who, body, response)


@router.get("/{strategy_id}/transitions", response_model=TransitionList, responses={404: _RESPONSES[404]},
            summary="The strategy's recorded transitions, oldest first (any role)")
async def transitions(
    strategy_id: StrategyPath, db: Db, _state: Service, _who: CurrentPrincipal,
    after: Annotated[int | None, Query(ge=0, le=2**62, description="Only transitions with a larger id.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> TransitionList:
    """From, to, action, who, when and why of every transition (the registration first)."""
    items = await repository.list_transitions(db, strategy_id, limit=limit, after=after)
    return TransitionList(items=items, next_after=items[-1].id if len(items) == limit else None)


@router.get("/{strategy_id}/workflows", response_model=WorkflowList, responses={404: _RESPONSES[404]},
            summary="The strategy's start/stop workflows with every step attempt, newest first (any role)")
async def workflows(
    strategy_id: StrategyPath, db: Db, _state: Service, _who: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> WorkflowList:
    """What each background workflow did: steps, attempts, outcomes, and the replica running it."""
    return WorkflowList(items=await repository.list_workflows(db, strategy_id, limit=limit))
