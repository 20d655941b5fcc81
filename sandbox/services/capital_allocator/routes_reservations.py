"""``/v1/strategies/{strategy}/reservations``: capital held by open orders (OMS service tokens and admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response

from sandbox.services.capital_allocator import reservations
from sandbox.services.capital_allocator.models import (
    ORDER_ID_PATTERN,
    STRATEGY_PATTERN,
    ConsumeRequest,
    ReservationCreate,
    ReservationList,
    ReservationOutcome,
    ReservationPublic,
    ReservationStatus,
)
from sandbox.services.capital_allocator.state import Allocator, AllocatorState, get_sync
from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles

router = APIRouter(prefix="/v1/strategies/{strategy}/reservations", tags=["reservations"])

StrategyPath = Annotated[str, Path(pattern=STRATEGY_PATTERN, max_length=64, description="Strategy id")]
OrderPath = Annotated[str, Path(pattern=ORDER_ID_PATTERN, max_length=128, description="Order id")]
Oms = Annotated[Principal, Depends(require_roles("service"))]
_404 = {404: {"description": "Unknown strategy or reservation"}}


def _outcome(state: AllocatorState, action: str, outcome: reservations.Outcome, status: int = 200) -> Response:
    """The answer, serialised once (the OMS's hot path: no second validation by FastAPI)."""
    get_sync(state).local(outcome.strategy)
    state.metrics.reservations.labels(action, "replayed" if outcome.replayed else "ok").inc()
    body = ReservationOutcome(
        reservation=outcome.reservation, capital=outcome.strategy.capital(state.cache.currency),
        replayed=outcome.replayed,
    )
    return Response(body.model_dump_json(), status_code=status, media_type="application/json")


def _count_error(state: AllocatorState, action: str, exc: Exception) -> None:
    state.metrics.reservations.labels(action, getattr(exc, "code", "error")).inc()


@router.post("", response_model=ReservationOutcome, status_code=201,
             summary="Reserve capital for an order (service, admin)",
             responses={200: {"model": ReservationOutcome, "description": "Replay of an identical reservation"},
                        **_404,
                        409: {"description": "insufficient_capital, strategy_inactive or reservation_conflict"}})
async def create_reservation(
    strategy: StrategyPath, body: ReservationCreate, state: Allocator, who: Oms
) -> Response:
    """Idempotent on ``order_id``: an identical retry answers 200 with the stored reservation."""
    try:
        outcome = await reservations.reserve(state.pool, strategy, body, who.subject)
    except Exception as exc:
        _count_error(state, "reserve", exc)
        raise
    return _outcome(state, "reserve", outcome, 200 if outcome.replayed else 201)


@router.get("", response_model=ReservationList, summary="A strategy's reservations (any role)")
async def list_reservations(
    strategy: StrategyPath, state: Allocator, _who: CurrentPrincipal,
    status: ReservationStatus | None = Query(None), limit: int = Query(100, ge=1, le=1000),
) -> ReservationList:
    """Newest first."""
    items = await reservations.list_for(state.pool, strategy, status, limit)
    return ReservationList(items=items, count=len(items))


@router.get("/{order_id}", response_model=ReservationPublic, summary="One reservation (any role)", responses=_404)
async def get_reservation(
    strategy: StrategyPath, order_id: OrderPath, state: Allocator, _who: CurrentPrincipal
) -> ReservationPublic:
    """By order id."""
    return await reservations.get(state.pool, strategy, order_id)


@router.post("/{order_id}/release", response_model=ReservationOutcome,
             summary="Release a reservation (service, admin)", responses=_404)
async def release_reservation(
    strategy: StrategyPath, order_id: OrderPath, state: Allocator, _who: Oms
) -> Response:
    """The order was cancelled or rejected: free what remains. Idempotent."""
    try:
        outcome = await reservations.release(state.pool, strategy, order_id)
    except Exception as exc:
        _count_error(state, "release", exc)
        raise
    return _outcome(state, "release", outcome)


@router.post("/{order_id}/consume", response_model=ReservationOutcome,
             summary="Record fills against a reservation (service, admin)", responses=_404)
async def consume_reservation(
    strategy: StrategyPath, order_id: OrderPath, body: ConsumeRequest, state: Allocator, _who: Oms
) -> Response:
    """``consumed_total`` is cumulative (retries are no-ops); ``final`` closes the reservation."""
    try:
        outcome = await reservations.consume(state.pool, strategy, order_id, body)
    except Exception as exc:
        _count_error(state, "consume", exc)
        raise
    return _outcome(state, "consume", outcome)
