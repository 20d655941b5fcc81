"""``/v1/compliance/restricted``: the restricted list (read: any role; write: risk-officer, admin)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status

from sandbox.services.kit.errors import ServiceError
from sandbox.services.risk import store_compliance
from sandbox.services.risk.models import (
    ACCOUNT_PATTERN,
    RestrictedCreate,
    RestrictedList,
    RestrictedPublic,
    RestrictedUpdate,
)
from sandbox.services.risk.roles import READERS, Writer
from sandbox.services.risk.runtime import Risk
from sandbox.services.risk.views import restricted_public

router = APIRouter(prefix="/v1/compliance/restricted", tags=["compliance"])

EntryId = Annotated[int, Path(ge=1, le=2**63 - 1, description="Entry id.")]


def _missing(entry_id: int) -> ServiceError:
    return ServiceError(404, "restricted_not_found", f"no restricted-list entry {entry_id}")


@router.get("", dependencies=[READERS], summary="List restricted-list entries")
async def list_restricted(
    risk: Risk,
    account: Annotated[str | None, Query(pattern=ACCOUNT_PATTERN, max_length=64,
                                         description="Entries applying to this account (its own and global).")] = None,
    kind: Literal["symbol", "asset"] | None = None,
    scope: Literal["global", "account"] | None = None,
) -> RestrictedList:
    """Entries from memory, filtered."""
    items = []
    for entry in risk.state.restricted.entries:
        if account is not None and entry.account not in (None, account):
            continue
        if kind is not None and entry.kind != kind:
            continue
        if scope is not None and (entry.account is None) != (scope == "global"):
            continue
        items.append(restricted_public(entry))
    return RestrictedList(items=items, count=len(items))


@router.get("/{entry_id}", dependencies=[READERS], summary="Get a restricted-list entry")
async def get_restricted(entry_id: EntryId, risk: Risk) -> RestrictedPublic:
    """One entry (404 ``restricted_not_found``)."""
    for entry in risk.state.restricted.entries:
        if entry.id == entry_id:
            return restricted_public(entry)
    raise _missing(entry_id)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Restrict a symbol or base asset (risk-officer)",
             responses={409: {"description": "Already restricted"}})
async def create_restricted(body: RestrictedCreate, risk: Risk, who: Writer) -> RestrictedPublic:
    """Add an entry (global when ``account`` is omitted); audited."""
    entry = await store_compliance.create_restricted(
        risk.pools["compliance"], who, kind=body.kind, value=body.value, account=body.account, reason=body.reason
    )
    await risk.refresh("restricted")
    return restricted_public(entry)


@router.patch("/{entry_id}", summary="Change an entry's reason (risk-officer)")
async def update_restricted(entry_id: EntryId, body: RestrictedUpdate, risk: Risk, who: Writer) -> RestrictedPublic:
    """Update the reason; audited."""
    entry = await store_compliance.update_restricted(risk.pools["compliance"], who, entry_id, body.reason)
    if entry is None:
        raise _missing(entry_id)
    await risk.refresh("restricted")
    return restricted_public(entry)


@router.delete("/{entry_id}", status_code=204, summary="Lift a restriction (risk-officer)")
async def delete_restricted(entry_id: EntryId, risk: Risk, who: Writer) -> Response:
    """Remove an entry; audited."""
    if await store_compliance.delete_restricted(risk.pools["compliance"], who, entry_id) is None:
        raise _missing(entry_id)
    await risk.refresh("restricted")
    return Response(status_code=204)
