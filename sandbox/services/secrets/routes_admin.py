"""Admin endpoints: the audit trail, key rotation jobs and the key-ring status."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from sandbox.services.kit.auth import Principal, require_roles
from sandbox.services.kit.deps import Db
from sandbox.services.kit.errors import ServiceError
from sandbox.services.secrets import rotation, store
from sandbox.services.secrets.models import (
    AuditAction,
    AuditOutcome,
    AuditPage,
    KeyRingStatus,
    RotationJob,
    RotationRequest,
)
from sandbox.services.secrets.runtime import State, actor_of

router = APIRouter(tags=["admin"])

Admin = Annotated[Principal, Depends(require_roles("admin"))]
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or revoked token"},
                                            403: {"description": "Admin only"}}
_Filter = Annotated[str | None, Query(min_length=1, max_length=80, pattern=r"^[^\x00-\x1f\x7f]+$")]


@router.get("/v1/audit", response_model=AuditPage, responses=_ERRORS, summary="Query the audit trail (admin)")
async def query_audit(
    _: Admin, db: Db,
    account: _Filter = None,
    key_id: _Filter = None,
    action: Annotated[AuditAction | None, Query()] = None,
    outcome: Annotated[AuditOutcome | None, Query()] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")] = None,
    since: Annotated[datetime | None, Query(description="Inclusive lower bound on the event time.")] = None,
    until: Annotated[datetime | None, Query(description="Exclusive upper bound on the event time.")] = None,
    before_id: Annotated[int | None, Query(ge=1, le=2**62, description="Cursor: events with a smaller id.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Audit events (creates, updates, deletes, every reveal attempt, rotations), newest first."""
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise ServiceError(422, "invalid_timestamp", f"{name} must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
    items, cursor = await store.query_audit(
        db, account=account, key_id=key_id, action=action, outcome=outcome, actor=actor,
        since=since, until=until, before_id=before_id, limit=limit,
    )
    return {"items": items, "next_before_id": cursor}


@router.post("/v1/rotate", status_code=status.HTTP_202_ACCEPTED, response_model=RotationJob,
             responses={**_ERRORS, 409: {"description": "A rotation is already running"}},
             summary="Start re-encrypting every record to the current master-key version (admin)")
async def start_rotation(principal: Admin, state: State, body: RotationRequest | None = None) -> Any:
    """Start a background rotation job; poll ``GET /v1/rotations/{job_id}`` for its progress.

    Reads and reveals keep working during the rotation.
    """
    body = body or RotationRequest()
    assert state.rotator is not None  # set by the start-up hook
    return await state.rotator.start(actor_of(principal), body.batch_size, body.rotate_data_keys, body.pause_ms)


@router.get("/v1/rotations", response_model=list[RotationJob], responses=_ERRORS, summary="Recent rotation jobs (admin)")
async def list_rotations(_: Admin, db: Db, limit: Annotated[int, Query(ge=1, le=100)] = 20) -> Any:
    """The most recent rotation jobs, newest first."""
    return await rotation.list_jobs(db, limit)


@router.get("/v1/rotations/{job_id}", response_model=RotationJob,
            responses={**_ERRORS, 404: {"description": "No such job"}}, summary="One rotation job (admin)")
async def get_rotation(job_id: uuid.UUID, _: Admin, db: Db) -> Any:
    """Status and progress of one rotation job."""
    return await rotation.get_job(db, job_id)


@router.get("/v1/keyring", response_model=KeyRingStatus, responses=_ERRORS,
            summary="Key-ring versions and records per version (admin; never key material)")
async def keyring_status(_: Admin, state: State, db: Db) -> Any:
    """Which master-key versions this replica holds and how many records each version seals."""
    counts = await store.records_by_version(db)
    return {
        "current_version": state.ring.current_version,
        "versions": state.ring.versions,
        "records_by_version": {str(v): n for v, n in sorted(counts.items())},
        "missing_versions": sorted(v for v in counts if v not in state.ring.keys),
    }
