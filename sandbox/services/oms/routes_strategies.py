"""``/v1/strategies/{strategy}/cancel-all``: the strategy orchestrator stops a strategy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from sandbox.services.kit.auth import Principal, require_roles
from sandbox.services.oms import store
from sandbox.services.oms.models import STRATEGY_PATTERN, CancelAllRequest, CancelAllResult
from sandbox.services.oms.runtime import Oms

router = APIRouter(prefix="/v1/strategies/{strategy}", tags=["strategies"])

StrategyPath = Annotated[str, Path(pattern=STRATEGY_PATTERN, max_length=64, description="Strategy id")]
Canceller = Annotated[Principal, Depends(require_roles("trader", "service"))]


@router.post("/cancel-all", response_model=CancelAllResult,
             summary="Cancel every open order of the strategy (trader, service)")
async def cancel_all(
    strategy: StrategyPath, oms: Oms, who: Canceller, body: Annotated[CancelAllRequest | None, Body()] = None,
) -> CancelAllResult:
    """Cancels at the venue across accounts; each cancelled order releases its capital reservation."""
    body = body or CancelAllRequest()
    symbol = oms.catalog.find(body.symbol).symbol if body.symbol and oms.catalog.find(body.symbol) else body.symbol
    orders = await store.open_orders(oms.pool, strategy=strategy, symbol=symbol)
    why = body.reason or f"strategy stop by {who.subject}"
    return CancelAllResult.model_validate(await oms.orders.cancel_many(orders, why, f"strategy:{strategy}"))
