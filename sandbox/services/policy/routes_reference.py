"""``GET /v1/reference`` (what this replica holds) and ``POST /v1/refresh`` (reload now)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sandbox.services.kit.auth import require_roles
from sandbox.services.kit.errors import ServiceError
from sandbox.services.policy.models import ACCOUNT_PATTERN, ReferencePublic, RefreshReport
from sandbox.services.policy.reference import UpstreamError
from sandbox.services.policy.runtime import Policy

router = APIRouter(prefix="/v1", tags=["reference"])


@router.get("/reference", response_model=ReferencePublic,
            dependencies=[require_roles("risk-officer", "viewer", "service")],
            summary="State of the cached reference data")
async def reference(policy: Policy) -> ReferencePublic:
    """Instrument count and age, venue status, cached permissions, rules; credential presence only."""
    ref = policy.reference
    return ReferencePublic(
        instruments=len(ref.snapshot),
        instruments_loaded_at=ref.loaded_at,
        instruments_error=ref.error,
        instruments_skipped=[{"pair_key": k, "reason": r} for k, r in ref.snapshot.skipped],
        venue_status=ref.venue_status,
        venue_status_at=ref.venue_status_at,
        venue_error=ref.venue_error,
        permissions_cached=len(policy.permissions),
        rules=len(policy.rules),
        rules_revision=policy.rules.revision,
        kraken_credentials=policy.credentials.state,
    )


@router.post(
    "/refresh", response_model=RefreshReport,
    dependencies=[require_roles("risk-officer", "service")],
    responses={503: {"description": "An upstream could not be reached (refresh_failed; last data kept)"}},
    summary="Reload instruments, venue status and rules now; drop cached permissions",
)
async def refresh(
    policy: Policy,
    account: Annotated[str | None, Query(pattern=ACCOUNT_PATTERN, max_length=64,
                                         description="Drop only this account's permissions")] = None,
) -> RefreshReport:
    """Instruments from universe-service, venue SystemStatus, rules from the database; permissions re-fetched
    on the next check. 503 ``refresh_failed`` (detail = the report) when an upstream failed."""
    errors: dict[str, str] = {}
    changed = False
    try:
        changed = await policy.reference.refresh_instruments()
    except UpstreamError as exc:
        errors["instruments"] = str(exc)
    try:
        await policy.reference.refresh_venue()
    except UpstreamError as exc:
        errors["venue"] = str(exc)
    await policy.rules.reload_all()
    dropped = policy.permissions.invalidate(account)
    report = RefreshReport(
        instruments=len(policy.reference.snapshot), instruments_changed=changed,
        venue_status=policy.reference.venue_status, permissions_dropped=dropped, rules=len(policy.rules),
        errors=errors,
    )
    if errors:
        raise ServiceError(503, "refresh_failed", "; ".join(f"{k}: {v}" for k, v in errors.items()),
                           detail=report.model_dump(mode="json"))
    return report
