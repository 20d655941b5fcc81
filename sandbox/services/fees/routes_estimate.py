"""``POST /v1/estimate``: the fee of an order for an account, at the tier its 30-day volume selects."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from sandbox.services.fees.models import EstimatePublic, EstimateRequest, tier_public
from sandbox.services.fees.runtime import Fees, FeesRuntime
from sandbox.services.kit.auth import require_roles
from sandbox.services.kit.hot import FALLBACK, HotCall, HotRoute

router = APIRouter(prefix="/v1/estimate", tags=["estimate"])

ROUNDING_NAMES = {"half_up": "ROUND_HALF_UP", "up": "ROUND_UP"}
ESTIMATORS = ("trader", "risk-officer", "viewer", "service")
#: The model is built here: FastAPI's response re-validation and encoding would be pure overhead.
_serialize = EstimatePublic.__pydantic_serializer__.to_json


@router.post(
    "",
    response_model=EstimatePublic,
    dependencies=[require_roles(*ESTIMATORS)],
    summary="Estimate an order's fee",
    responses={
        404: {"description": "No schedule for the symbol"},
        503: {"description": "universe-service unavailable"},
    },
)
async def estimate(body: EstimateRequest, fees: Fees) -> Response:
    """Cost and fee (quote currency, quote precision), the rate in percent and the tier used.

    A market order without ``price`` is priced at ``reference_price``.
    """
    return Response(await _estimate(body, fees), media_type="application/json")


async def _estimate(body: EstimateRequest, fees: FeesRuntime) -> bytes:
    price, source = (body.price, "price") if body.price is not None else (body.reference_price, "reference_price")
    assert price is not None  # guaranteed by EstimateRequest's validator
    schedule, volume, quote = await fees.estimate(
        account=body.account, symbol=body.symbol, qty=body.qty, price=price, liquidity=body.liquidity
    )
    # Every value is already of its field's type (the request validated, the rest computed here):
    # constructed without a second validation pass, serialised by the model's own serializer.
    return _serialize(EstimatePublic.model_construct(
        account=body.account,
        symbol=schedule.symbol,
        side=body.side,
        order_type=body.order_type,
        liquidity=body.liquidity,
        qty=body.qty,
        price=price,
        price_source=source,
        currency=schedule.quote,
        decimals=schedule.quote_decimals,
        cost=quote.cost,
        fee=quote.fee,
        rate=quote.percent,
        rounding=ROUNDING_NAMES[fees.settings.fee_rounding],
        minimum_fee_applied=quote.minimum_applied,
        volume_usd=volume.volume_usd,
        tier=tier_public(quote.choice, volume.volume_usd),
        schedule_source=schedule.source,
    ))


async def _estimate_hot(call: HotCall) -> object:
    """:func:`estimate` on the kit's fast path (token, role and body already checked)."""
    fees = getattr(call.state, "fees", None)
    if fees is None:
        return FALLBACK  # starting: FastAPI answers the 503
    return await _estimate(call.body, fees)


#: The fast path of ``POST /v1/estimate`` (see sandbox.services.kit.hot).
HOT = HotRoute("POST", "/v1/estimate", _estimate_hot, roles=ESTIMATORS, body=EstimateRequest)
