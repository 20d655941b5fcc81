"""``/v1/strategies``: register, list, read and update strategies.

Reads are served from this replica's cache (pre-rendered JSON, no database
round trip) with an ``ETag`` of the version; writes go to PostgreSQL and
update the cache at commit.
"""

from __future__ import annotations

import bisect
import re
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Response

from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles
from sandbox.services.kit.deps import Db
from sandbox.services.kit.errors import ServiceError
from sandbox.services.strategy_orchestrator import repository
from sandbox.services.strategy_orchestrator.machine import State
from sandbox.services.strategy_orchestrator.models import (
    KIND_PATTERN,
    STRATEGY_PATTERN,
    StrategyCreate,
    StrategyList,
    StrategyPublic,
    StrategyUpdate,
)
from sandbox.services.strategy_orchestrator.state import Service

router = APIRouter(prefix="/v1/strategies", tags=["strategies"])

JSON = "application/json"
StrategyPath = Annotated[str, Path(pattern=STRATEGY_PATTERN, max_length=64, description="Strategy id")]
#: Register and change strategies: traders, the platform's services, admin (admin passes every check).
Writer = Annotated[Principal, Depends(require_roles("trader", "service"))]
_404 = {404: {"description": "Unknown strategy (strategy_not_found)"}}
_ETAG = re.compile(r'^\s*(?:W/)?"?([0-9]{1,19})"?\s*$')


def parse_if_match(value: str | None) -> int | None:
    """The version an ``If-Match`` header names (``"12"``, ``12`` or ``W/"12"``; ``*`` or absent: any)."""
    if value is None or value.strip() == "*":
        return None
    match = _ETAG.match(value)
    if match is None:
        raise ServiceError(400, "invalid_if_match", 'If-Match must be a strategy version, e.g. "12"')
    return int(match.group(1))


def _served(strategy_id: str, response: Response, public: StrategyPublic) -> StrategyPublic:
    response.headers["ETag"] = f'"{public.version}"'
    response.headers["Location"] = f"/v1/strategies/{strategy_id}"
    return public


@router.post("", response_model=StrategyPublic, status_code=201,
             summary="Register a strategy (admin, trader, service)",
             responses={409: {"description": "The id is taken (strategy_exists)"}})
async def create_strategy(body: StrategyCreate, db: Db, state: Service, who: Writer, response: Response) -> StrategyPublic:
    """A new strategy starts ``registered``; the registration is its first recorded transition."""
    row = await repository.create_strategy(db, body, who)
    public = state.sync.local(row)  # type: ignore[union-attr]
    state.metrics.transitions.labels("register", "none", "registered").inc()
    return _served(body.id, response, public)


@router.get("", response_model=StrategyList, summary="Strategies, ordered by id (any role)")
async def list_strategies(
    state: Service,
    _who: CurrentPrincipal,
    lifecycle: Annotated[State | None, Query(alias="state", description="Only strategies in this state.")] = None,
    kind: Annotated[str | None, Query(pattern=KIND_PATTERN, max_length=64)] = None,
    after: Annotated[str | None, Query(pattern=STRATEGY_PATTERN, max_length=64,
                                       description="Only ids after this one (paging).")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Response:
    """From this replica's cache."""
    cache = state.cache
    ids = cache.ids()
    start = bisect.bisect_right(ids, after) if after is not None else 0
    bodies: list[bytes] = []
    next_after: str | None = None
    last_id = ""
    for sid in ids[start:]:
        item = cache.items[sid]
        if (lifecycle is not None and item.state != lifecycle) or (kind is not None and item.kind != kind):
            continue
        if len(bodies) == limit:
            next_after = last_id
            break
        bodies.append(item.body)
        last_id = sid
    tail = b'"' + next_after.encode() + b'"' if next_after else b"null"
    body = b'{"items":[' + b",".join(bodies) + b'],"count":' + str(len(bodies)).encode() + b',"next_after":' + tail + b"}"
    return Response(body, media_type=JSON)


@router.get("/{strategy_id}", response_model=StrategyPublic, summary="One strategy (any role)",
            responses={**_404, 304: {"description": "Not modified (If-None-Match)"}})
async def get_strategy(
    strategy_id: StrategyPath, state: Service, _who: CurrentPrincipal,
    if_none_match: Annotated[str | None, Header(max_length=200)] = None,
) -> Response:
    """Definition and lifecycle state, from this replica's cache; ``ETag`` is the version."""
    item = state.cache.get(strategy_id)
    if item is None:
        raise repository.strategy_not_found(strategy_id)
    if if_none_match is not None and item.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=304, headers={"ETag": item.etag})
    return Response(item.body, media_type=JSON, headers={"ETag": item.etag})


@router.patch("/{strategy_id}", response_model=StrategyPublic,
              summary="Change a strategy's definition while it is not live (admin, trader, service)",
              responses={**_404, 409: {"description": "Not editable in this state (not_editable)"},
                         412: {"description": "If-Match names another version (version_mismatch)"}})
async def update_strategy(
    strategy_id: StrategyPath, body: StrategyUpdate, db: Db, state: Service, who: Writer, response: Response,
    if_match: Annotated[str | None, Header(max_length=200)] = None,
) -> StrategyPublic:
    """Name, params, accounts and symbols change in registered, paused, stopped or failed; the capital
    target only in registered, stopped or failed (it is sent to capital-allocator at the next start)."""
    row = await repository.update_strategy(db, strategy_id, body, who, parse_if_match(if_match))
    return _served(strategy_id, response, state.sync.local(row))  # type: ignore[union-attr]
