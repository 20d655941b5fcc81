"""``/v1/sync``: sync instruments from the venue on demand, and the history of syncs."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from sandbox.services.kit.auth import Principal, require_roles
from sandbox.services.universe import repository
from sandbox.services.universe.models import SyncReport, SyncRunList
from sandbox.services.universe.state import Universe

router = APIRouter(prefix="/v1/sync", tags=["sync"])

Admin = Annotated[Principal, Depends(require_roles("admin"))]
Reader = Annotated[Principal, Depends(require_roles("risk-officer", "viewer"))]


@router.post(
    "",
    response_model=SyncReport,
    summary="Sync from the venue now (admin)",
    responses={
        502: {"description": "The venue answered with an unusable AssetPairs response; nothing changed"},
        503: {"description": "The venue is unreachable or temporarily unavailable; nothing changed"},
    },
)
async def sync_now(universe: Universe, who: Admin) -> SyncReport:
    """Fetch AssetPairs and apply the differences; idempotent (a repeat reports everything unchanged)."""
    return await universe.syncer.sync("api", who.subject)


@router.get("/runs", response_model=SyncRunList, summary="Recent syncs (admin, risk-officer, viewer)")
async def sync_runs(universe: Universe, _who: Reader, limit: int = Query(20, ge=1, le=500)) -> SyncRunList:
    """The latest syncs (start-up, retries and on demand), newest first, failures included."""
    rows = await repository.recent_sync_runs(universe.catalog.pool, limit)
    return SyncRunList.model_validate({"items": rows})
