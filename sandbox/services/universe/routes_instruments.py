"""``/v1/instruments``: list, look up, fee tiers, approve / exclude, audit trail.

Reads come from the in-memory snapshot as pre-rendered JSON.  A symbol is a
wsname (``XBT/USD``, URL-encoded as ``XBT%2FUSD`` or not), an altname
(``XBTUSD``), a Kraken pair key (``XXBTZUSD``) or a common alias (``BTC/USD``),
case-insensitive.  The routes with a suffix are declared before the bare
lookup because ``{symbol:path}`` may itself contain a slash.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.hot import FALLBACK, HotCall, HotRoute
from sandbox.services.universe import repository
from sandbox.services.universe.cache import MAX_NAME, Snapshot, to_public
from sandbox.services.universe.models import (
    ApprovalState,
    AuditList,
    DecisionCreate,
    FeeSchedulePublic,
    InstrumentList,
    InstrumentPublic,
)
from sandbox.services.universe.state import Universe, UniverseState

router = APIRouter(prefix="/v1/instruments", tags=["instruments"])

JSON = "application/json"
Symbol = Annotated[str, Path(description="wsname (XBT/USD, may be URL-encoded), altname (XBTUSD) or pair key")]
DecisionMaker = Annotated[Principal, Depends(require_roles("risk-officer"))]
AuditReader = Annotated[Principal, Depends(require_roles("risk-officer", "viewer"))]

_NOT_FOUND = {404: {"description": "Unknown instrument"}}


def _not_found(symbol: str) -> ServiceError:
    shown = symbol if len(symbol) <= MAX_NAME else symbol[:MAX_NAME] + "..."
    return ServiceError(404, "instrument_not_found", f"no instrument named {shown!r}")


def _key(snap: Snapshot, symbol: str) -> str:
    key = snap.resolve(symbol)
    if key is None:
        raise _not_found(symbol)
    return key


async def _key_fresh(universe: UniverseState, symbol: str) -> str:
    """Resolve for a write; on a miss, reload first if the database moved on (another replica just synced)."""
    key = universe.snapshot.resolve(symbol)
    if key is None and len(symbol) <= MAX_NAME:
        revision = await repository.current_revision(universe.catalog.pool)
        if revision > universe.snapshot.revision:
            await universe.catalog.reload("lookup-miss", min_revision=revision)
            key = universe.snapshot.resolve(symbol)
    if key is None:
        raise _not_found(symbol)
    return key


@router.get("", response_model=InstrumentList, summary="List instruments (any role)")
async def list_instruments(
    universe: Universe,
    _who: CurrentPrincipal,
    approval: ApprovalState | None = Query(None, description="pending, approved or excluded"),
    status: str | None = Query(None, max_length=32, description="Venue status, e.g. online"),
    base: str | None = Query(None, max_length=32, description="Base asset (XBT or XXBT)"),
    quote: str | None = Query(None, max_length=32, description="Quote asset (USD or ZUSD)"),
    listed: bool | None = Query(None, description="Still listed by the venue"),
    tradable: bool | None = Query(None, description="Listed, approved and accepting orders"),
    limit: int = Query(1000, ge=1, le=5000),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> Response:
    """Instruments matching every filter, ordered by symbol (delisted ones included unless ``listed=true``)."""
    filters = {"approval": approval, "status": status, "base": base, "quote": quote, "listed": listed,
               "tradable": tradable}
    return Response(universe.snapshot.page(filters, limit=limit, offset=offset), media_type=JSON)


@router.get(
    "/{symbol:path}/fees", response_model=FeeSchedulePublic, responses=_NOT_FOUND, summary="Fee tiers (any role)"
)
async def get_fees(symbol: Symbol, universe: Universe, _who: CurrentPrincipal) -> Response:
    """Taker and maker fee tiers of one instrument (for fees-service)."""
    snap = universe.snapshot
    return Response(snap.fees_json[_key(snap, symbol)], media_type=JSON)


@router.get(
    "/{symbol:path}/audit",
    response_model=AuditList,
    responses=_NOT_FOUND,
    summary="Audit trail (admin, risk-officer, viewer)",
)
async def get_audit(
    symbol: Symbol,
    universe: Universe,
    _who: AuditReader,
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = Query(None, ge=1, le=2**62, description="Only records with a smaller id (paging)"),
) -> AuditList:
    """Listings, venue changes, delistings and trading decisions, newest first."""
    key = _key(universe.snapshot, symbol)
    rows = await repository.audit_trail(universe.catalog.pool, key, limit=limit, before=before)
    next_before = rows[-1]["id"] if len(rows) == limit else None
    return AuditList.model_validate({"items": rows, "next_before": next_before})


async def _decide(
    universe: UniverseState, symbol: str, decision: Literal["approved", "excluded"], body: DecisionCreate,
    who: Principal,
) -> InstrumentPublic:
    key = await _key_fresh(universe, symbol)
    try:
        result = await repository.decide(universe.catalog.pool, key, decision, body.reason, who.subject)
    except LookupError as exc:
        raise ServiceError(409, "instrument_delisted", str(exc)) from None
    if result is None:
        raise _not_found(symbol)
    record, revision = result
    await universe.catalog.reload("decision", min_revision=revision)
    universe.decisions.labels(decision).inc()  # type: ignore[attr-defined]
    return to_public(record)


@router.post(
    "/{symbol:path}/approve",
    response_model=InstrumentPublic,
    responses={**_NOT_FOUND, 409: {"description": "The instrument is delisted"}},
    summary="Approve for trading (admin, risk-officer)",
)
async def approve(symbol: Symbol, body: DecisionCreate, universe: Universe, who: DecisionMaker) -> InstrumentPublic:
    """Approve an instrument for trading, with a reason (audited)."""
    return await _decide(universe, symbol, "approved", body, who)


@router.post(
    "/{symbol:path}/exclude",
    response_model=InstrumentPublic,
    responses=_NOT_FOUND,
    summary="Exclude from trading (admin, risk-officer)",
)
async def exclude(symbol: Symbol, body: DecisionCreate, universe: Universe, who: DecisionMaker) -> InstrumentPublic:
    """Exclude an instrument from trading, with a reason (audited)."""
    return await _decide(universe, symbol, "excluded", body, who)


@router.get("/{symbol:path}", response_model=InstrumentPublic, responses=_NOT_FOUND, summary="Look up (any role)")
async def get_instrument(symbol: Symbol, universe: Universe, _who: CurrentPrincipal) -> Response:
    """One instrument by wsname, altname, pair key or alias."""
    snap = universe.snapshot
    return Response(snap.json[_key(snap, symbol)], media_type=JSON)


async def _get_instrument_hot(call: HotCall) -> object:
    """:func:`get_instrument` on the kit's fast path (token already checked)."""
    universe = getattr(call.state, "universe", None)
    if universe is None:
        return FALLBACK  # starting: FastAPI answers the 503
    snap = universe.snapshot
    return snap.json[_key(snap, call.params["symbol"])]


#: The fast path of ``GET /v1/instruments/{symbol:path}`` (see sandbox.services.kit.hot).
HOT = HotRoute("GET", "/v1/instruments/{symbol:path}", _get_instrument_hot)
