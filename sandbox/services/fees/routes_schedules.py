"""``/v1/schedules``: the fee schedules this service uses (read: any role; write: admin).

``PUT`` sets a schedule by hand (source ``manual``), pinning it against
universe-service updates until ``DELETE`` removes it: for QA, and for running
without universe-service.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from sandbox.services.fees.models import SYMBOL_PATTERN, ScheduleCreate, ScheduleList, SchedulePublic
from sandbox.services.fees.runtime import Fees
from sandbox.services.kit.auth import require_roles
from sandbox.services.kit.errors import ServiceError

router = APIRouter(prefix="/v1/schedules", tags=["schedules"])

READERS = require_roles("trader", "risk-officer", "viewer", "service")
ADMIN = require_roles("admin")

SymbolPath = Annotated[
    str,
    Path(pattern=SYMBOL_PATTERN, max_length=49, description="Instrument symbol, e.g. XBT/USD (the slash may be raw)."),
]


@router.get("", dependencies=[READERS], summary="List cached schedules")
async def list_schedules(fees: Fees) -> ScheduleList:
    """Every schedule this replica holds (manual ones and those fetched from universe-service)."""
    items = [SchedulePublic.of(s) for s in fees.schedules.all()]
    return ScheduleList(items=items, count=len(items))


@router.get(
    "/{symbol:path}", dependencies=[READERS], summary="Get a schedule",
    responses={404: {"description": "Unknown instrument"}, 503: {"description": "universe-service unavailable"}},
)
async def get_schedule(symbol: SymbolPath, fees: Fees) -> SchedulePublic:
    """The schedule of an instrument, fetched from universe-service on first use."""
    return SchedulePublic.of(await fees.schedule(symbol.upper()))


@router.put(
    "/{symbol:path}", dependencies=[ADMIN], summary="Set a schedule (admin)",
    responses={201: {"model": SchedulePublic, "description": "Created"}},
)
async def put_schedule(symbol: SymbolPath, body: ScheduleCreate, response: Response, fees: Fees) -> SchedulePublic:
    """Create or replace an instrument's schedule by hand (source ``manual``; 201 when new, else 200)."""
    stored, created = await fees.schedules.put_manual(body.to_schedule(symbol.upper()))
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return SchedulePublic.of(stored)


@router.delete(
    "/{symbol:path}", dependencies=[ADMIN], status_code=204, summary="Remove a schedule (admin)",
    responses={404: {"description": "No such schedule"}},
)
async def delete_schedule(symbol: SymbolPath, fees: Fees) -> Response:
    """Forget a schedule; the next use fetches it from universe-service again."""
    removed = await fees.schedules.delete(symbol.upper())
    if removed is None:
        raise ServiceError(404, "schedule_not_found", f"no stored fee schedule for {symbol.upper()}")
    return Response(status_code=204)
