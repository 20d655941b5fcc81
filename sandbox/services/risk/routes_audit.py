"""``GET /v1/audit``: the audit trail of every dataset change (risk-officer, admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, AwareDatetime

from sandbox.services.risk import audit
from sandbox.services.risk.models import AuditEntry, AuditList
from sandbox.services.risk.roles import AUDITORS
from sandbox.services.risk.runtime import Risk

router = APIRouter(prefix="/v1/audit", tags=["audit"])



def _sane_year(value: datetime) -> datetime:
    if not 1900 <= value.year <= 9000:
        raise ValueError("year must be between 1900 and 9000")
    return value


Instant = Annotated[AwareDatetime, AfterValidator(_sane_year)]
Entity = Literal["restricted", "kill_switch", "esg_exclusion", "account_limits", "position_limit", "mark"]


@router.get("", dependencies=[AUDITORS], summary="Query the audit trail")
async def query_audit(
    risk: Risk,
    dataset: Literal["compliance", "esg", "diversification"] | None = None,
    entity: Entity | None = None,
    key: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$")] = None,
    since: Annotated[Instant | None, Query(description="From this instant (with offset), inclusive.")] = None,
    until: Annotated[Instant | None, Query(description="Before this instant (with offset).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditList:
    """Changes, newest first (merged across the three datasets unless ``dataset`` is given).

    ``key`` is the entity key: the entry id (restricted), the account (kill_switch,
    account_limits; ``*`` = defaults), the asset (esg_exclusion), ``account|symbol``
    (position_limit), the symbol (mark).
    """
    rows = await audit.query(
        risk.pools, dataset=dataset, entity=entity, key=key, actor=actor, since=since, until=until, limit=limit
    )
    items = [AuditEntry(**row) for row in rows]
    return AuditList(items=items, count=len(items))
