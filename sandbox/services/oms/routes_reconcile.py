"""Reconciliation (``POST /v1/reconcile``, history) and ``GET /v1/status``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query

from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles
from sandbox.services.kit.errors import ServiceError
from sandbox.services.oms.models import ReconcileRequest, ReconciliationList, ReconciliationPublic
from sandbox.services.oms.reconcile import get_reconciliation, list_reconciliations
from sandbox.services.oms.runtime import Oms

router = APIRouter(prefix="/v1", tags=["reconciliation"])

Reconciler = Annotated[Principal, Depends(require_roles("service"))]
Auditor = Annotated[Principal, Depends(require_roles("service", "risk-officer"))]


@router.post("/reconcile", response_model=ReconciliationPublic, summary="Reconcile with the venue now (admin, service)")
async def reconcile(
    oms: Oms, who: Reconciler, body: Annotated[ReconcileRequest | None, Body()] = None,
) -> ReconciliationPublic:
    """Orders, fills and balances compared, differences repaired; answers the run with its differences."""
    lookback = body.lookback_s if body else None
    return ReconciliationPublic.model_validate(await oms.reconcile("manual", who.subject, lookback))


@router.get("/reconciliations", response_model=ReconciliationList,
            summary="Reconciliation history, newest first (admin, service, risk-officer)")
async def history(
    oms: Oms, _who: Auditor, limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[int | None, Query(ge=1, le=2**62, description="Runs with a smaller id")] = None,
) -> ReconciliationList:
    """Each run with its differences."""
    items = await list_reconciliations(oms.pool, limit, before)
    return ReconciliationList.model_validate({"items": items, "count": len(items)})


@router.get("/reconciliations/{rec_id}", response_model=ReconciliationPublic,
            summary="One reconciliation run (admin, service, risk-officer)",
            responses={404: {"description": "reconciliation_not_found"}})
async def one(rec_id: Annotated[int, Path(ge=1, le=2**62)], oms: Oms, _who: Auditor) -> ReconciliationPublic:
    """A run with its differences."""
    record = await get_reconciliation(oms.pool, rec_id)
    if record is None:
        raise ServiceError(404, "reconciliation_not_found", f"no reconciliation {rec_id}")
    return ReconciliationPublic.model_validate(record)


@router.get("/status", summary="Connections and caches of this replica (any role)")
async def status(oms: Oms, _who: CurrentPrincipal) -> dict[str, Any]:
    """Venue credentials, instruments, executions feed, active kill switches, last reconciliation."""
    return oms.status()
