"""``POST /v1/check-order``: is this order allowed at the venue? Every violation, each with a stable code."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from sandbox.services.kit.auth import require_roles
from sandbox.services.kit.decimal_json import DecimalRoute
from sandbox.services.kit.hot import FALLBACK, HotCall, HotRoute
from sandbox.services.policy.models import CheckOrderPublic, CheckOrderRequest
from sandbox.services.policy.runtime import Policy

router = APIRouter(prefix="/v1", tags=["check"], route_class=DecimalRoute)
CHECKERS = ("trader", "service", "risk-officer")


@router.post(
    "/check-order",
    response_model=CheckOrderPublic,
    dependencies=[require_roles(*CHECKERS)],
    summary="Check an order against venue rules, key permissions and the account's policy rules",
    responses={503: {"description": "Instruments not loaded yet (reference_data_unavailable)"}},
)
async def check_order(body: CheckOrderRequest, policy: Policy) -> Response:
    """200 with ``allowed`` and every violation (``code``, ``message``, ``field``, ``limit``, ``actual``).

    A refused order is still a 200: the check itself succeeded. Malformed orders
    (a limit order without price, a market order with one, post-only market
    orders, unknown fields, out-of-range numbers) are 422.
    """
    return Response(await policy.check(body), media_type="application/json")


async def _check_hot(call: HotCall) -> object:
    """:func:`check_order` on the kit's fast path (token, role and body already checked)."""
    policy = getattr(call.state, "policy", None)
    if policy is None:
        return FALLBACK  # starting or stopping: FastAPI answers the 503
    return await policy.check(call.body)


#: The fast path of ``POST /v1/check-order`` (see sandbox.services.kit.hot).
HOT = HotRoute("POST", "/v1/check-order", _check_hot, roles=CHECKERS, body=CheckOrderRequest, decimal=True)
