"""``POST /v1/check-order``: one order against every rule, every violation listed (trader, service, risk-officer)."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter
from fastapi.responses import Response

from sandbox.services.kit.hot import FALLBACK, HotCall, HotRoute
from sandbox.services.risk.models import CheckOrderRequest, CheckOrderResponse
from sandbox.services.risk.roles import CHECKERS
from sandbox.services.risk.rules import Order
from sandbox.services.risk.runtime import Risk, RiskRuntime
from sandbox.services.risk.views import check_public

router = APIRouter(prefix="/v1", tags=["check"])

_serialize = CheckOrderResponse.__pydantic_serializer__.to_json


@router.post(
    "/check-order", dependencies=[CHECKERS], response_model=CheckOrderResponse,
    summary="Pre-trade risk check of one order",
)
async def check_order(body: CheckOrderRequest, risk: Risk) -> Response:
    """200 with ``allowed`` and the list of violations (stable codes); served from memory."""
    return Response(await _check(body, risk), media_type="application/json")


async def _check(body: CheckOrderRequest, risk: RiskRuntime) -> bytes:
    order = Order(
        account=body.account, symbol=body.symbol, side=body.side, qty=body.qty, price=body.price,
        reference_price=body.reference_price, strategy=body.strategy,
    )
    result = await risk.check(order)
    # Serialised here: the model is built by us, so FastAPI's response re-validation would be pure overhead.
    public = check_public(order, result, body.client_order_id, datetime.now(timezone.utc))
    return _serialize(public)


async def _check_hot(call: HotCall) -> object:
    """:func:`check_order` on the kit's fast path (token, role and body already checked)."""
    risk = getattr(call.state, "risk", None)
    if risk is None:
        return FALLBACK  # starting: FastAPI answers the 503
    return await _check(call.body, risk)


#: The fast path of ``POST /v1/check-order`` (see sandbox.services.kit.hot).
HOT = HotRoute("POST", "/v1/check-order", _check_hot, roles=tuple(sorted(CHECKERS.roles)), body=CheckOrderRequest)
