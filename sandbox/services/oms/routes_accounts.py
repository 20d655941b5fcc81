"""``/v1/accounts/{account}``: positions, and cancelling every open order of an account."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from sandbox.services.kit.auth import Principal, require_roles
from sandbox.services.oms import store
from sandbox.services.oms.models import ACCOUNT_PATTERN, CancelAllRequest, CancelAllResult, PositionList
from sandbox.services.oms.runtime import Oms

router = APIRouter(prefix="/v1/accounts/{account}", tags=["accounts"])

AccountPath = Annotated[str, Path(pattern=ACCOUNT_PATTERN, max_length=64, description="Account id")]
Reader = Annotated[Principal, Depends(require_roles("trader", "service", "viewer", "risk-officer"))]
Canceller = Annotated[Principal, Depends(require_roles("trader", "service", "risk-officer"))]


@router.get("/positions", response_model=PositionList,
            summary="Positions by symbol, from the OMS's fills (trader, service, viewer, risk-officer)")
async def get_positions(account: AccountPath, oms: Oms, _who: Reader) -> PositionList:
    """Signed quantity (long > 0), average cost, realised P&L, fees (in the quote currency)."""
    return PositionList.model_validate({"account": account, "positions": await store.positions(oms.pool, account)})


@router.post("/cancel-all", response_model=CancelAllResult,
             summary="Cancel every open order of the account (trader, service, risk-officer)")
async def cancel_all(
    account: AccountPath, oms: Oms, who: Canceller, body: Annotated[CancelAllRequest | None, Body()] = None,
) -> CancelAllResult:
    """Cancels at the venue; orders not acknowledged yet are cancelled when they are (``pending``)."""
    body = body or CancelAllRequest()
    symbol = oms.catalog.find(body.symbol).symbol if body.symbol and oms.catalog.find(body.symbol) else body.symbol
    orders = await store.open_orders(oms.pool, account=account, symbol=symbol)
    why = body.reason or f"cancel-all by {who.subject}"
    return CancelAllResult.model_validate(await oms.orders.cancel_many(orders, why, f"account:{account}"))
