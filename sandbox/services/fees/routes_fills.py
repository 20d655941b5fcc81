"""``POST /v1/fills``: record a fill over HTTP (service accounts and admins).

The same path as the Kafka consumer: idempotent on ``fill_id``.
"""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from sandbox.services.fees.models import FillCreate, FillRecorded
from sandbox.services.fees.runtime import Fees
from sandbox.services.kit.auth import require_roles
from sandbox.services.kit.errors import ServiceError

router = APIRouter(prefix="/v1/fills", tags=["fills"])


@router.post(
    "", dependencies=[require_roles("service")], status_code=201, summary="Record a fill (service, admin)",
    responses={
        200: {"model": FillRecorded, "description": "Already recorded with the same content (not counted again)"},
        409: {"description": "The fill id was recorded with different content"},
    },
)
async def post_fill(body: FillCreate, response: Response, fees: Fees) -> FillRecorded:
    """Record one fill; 201 when new, 200 for an identical replay, 409 when the id carries other content."""
    [(outcome, record)] = await fees.record([body], "http")
    if outcome == "conflict":
        raise ServiceError(
            409, "fill_conflict", f"fill {body.fill_id} was already recorded with different content"
        )
    response.status_code = status.HTTP_201_CREATED if outcome == "recorded" else status.HTTP_200_OK
    usd = record.usd_notional if outcome == "recorded" else None
    return FillRecorded(fill_id=body.fill_id, status=outcome, usd_notional=usd)
