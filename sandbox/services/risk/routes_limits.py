"""``/v1/limits``: account limits (``/defaults`` for every account) and per-symbol position limits.

Read: any role; write: risk-officer, admin. Every change is audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import AfterValidator

from sandbox.services.kit.auth import Principal
from sandbox.services.kit.errors import ServiceError
from sandbox.services.risk import store_limits
from sandbox.services.risk.domain import DEFAULT_ACCOUNT, AccountLimits
from sandbox.services.risk.models import (
    ACCOUNT_PATTERN,
    PATH_SYMBOL_PATTERN,
    AccountLimitsList,
    AccountLimitsPublic,
    AccountLimitsUpdate,
    PositionLimitList,
    PositionLimitPublic,
    PositionLimitUpdate,
    path_symbol,
)
from sandbox.services.risk.roles import READERS, Writer
from sandbox.services.risk.runtime import Risk, RiskRuntime
from sandbox.services.risk.views import account_limits_public, position_limit_public

router = APIRouter(prefix="/v1/limits", tags=["limits"])

AccountPath = Annotated[str, Path(pattern=ACCOUNT_PATTERN, max_length=64, description="Account id.")]
SymbolPath = Annotated[
    str,
    Path(pattern=PATH_SYMBOL_PATTERN, max_length=33, description="BASE/QUOTE (raw slash) or BASE-QUOTE, e.g. XBT/USD."),
    AfterValidator(path_symbol),
]
_CREATED = {201: {"model": AccountLimitsPublic, "description": "Created"}}


def _domain(body: AccountLimitsUpdate) -> AccountLimits:
    return AccountLimits(
        gross_exposure=body.gross_exposure, daily_loss=body.daily_loss,
        concentration_pct=body.concentration_pct, concentration_floor=body.concentration_floor,
    )


async def _put(
    risk: RiskRuntime, who: Principal, account: str, body: AccountLimitsUpdate, response: Response
) -> AccountLimitsPublic:
    stored, created = await store_limits.put_account_limits(risk.pools["diversification"], who, account, _domain(body))
    await risk.refresh("limits")
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return account_limits_public(account, stored, risk.state.limits)


async def _delete(risk: RiskRuntime, who: Principal, account: str) -> Response:
    if await store_limits.delete_account_limits(risk.pools["diversification"], who, account) is None:
        raise ServiceError(404, "limits_not_found", f"no limits set for {account}")
    await risk.refresh("limits")
    return Response(status_code=204)


@router.get("/defaults", dependencies=[READERS], summary="Default account limits")
async def get_defaults(risk: Risk) -> AccountLimitsPublic:
    """The limits of every account without its own value (all null when unset)."""
    own = risk.state.limits.accounts.get(DEFAULT_ACCOUNT, AccountLimits())
    return account_limits_public(DEFAULT_ACCOUNT, own, risk.state.limits)


@router.put("/defaults", summary="Set the default account limits (risk-officer)", responses=_CREATED)
async def put_defaults(body: AccountLimitsUpdate, response: Response, risk: Risk, who: Writer) -> AccountLimitsPublic:
    """Replace the defaults (201 when first set)."""
    return await _put(risk, who, DEFAULT_ACCOUNT, body, response)


@router.delete("/defaults", status_code=204, summary="Remove the default account limits (risk-officer)")
async def delete_defaults(risk: Risk, who: Writer) -> Response:
    """No defaults any more."""
    return await _delete(risk, who, DEFAULT_ACCOUNT)


@router.get("/accounts", dependencies=[READERS], summary="List accounts with their own limits")
async def list_account_limits(risk: Risk) -> AccountLimitsList:
    """Every account's own and effective limits."""
    limits = risk.state.limits
    items = [
        account_limits_public(account, own, limits)
        for account, own in sorted(limits.accounts.items()) if account != DEFAULT_ACCOUNT
    ]
    return AccountLimitsList(items=items, count=len(items))


@router.get("/accounts/{account}", dependencies=[READERS], summary="An account's limits")
async def get_account_limits(account: AccountPath, risk: Risk) -> AccountLimitsPublic:
    """Own limits (null when unset) and effective ones (defaults filled in)."""
    own = risk.state.limits.accounts.get(account, AccountLimits())
    return account_limits_public(account, own, risk.state.limits)


@router.put("/accounts/{account}", summary="Set an account's limits (risk-officer)", responses=_CREATED)
async def put_account_limits(
    account: AccountPath, body: AccountLimitsUpdate, response: Response, risk: Risk, who: Writer
) -> AccountLimitsPublic:
    """Replace the account's limits (null fields fall back to the defaults)."""
    return await _put(risk, who, account, body, response)


@router.delete("/accounts/{account}", status_code=204, summary="Remove an account's limits (risk-officer)")
async def delete_account_limits(account: AccountPath, risk: Risk, who: Writer) -> Response:
    """The defaults apply again."""
    return await _delete(risk, who, account)


@router.get("/positions", dependencies=[READERS], summary="List position limits")
async def list_position_limits(
    risk: Risk,
    account: Annotated[str | None, Query(pattern=ACCOUNT_PATTERN, max_length=64)] = None,
) -> PositionLimitList:
    """Every position limit, or one account's."""
    items = [
        position_limit_public(p)
        for key, p in sorted(risk.state.limits.positions.items())
        if account is None or key[0] == account
    ]
    return PositionLimitList(items=items, count=len(items))


@router.get("/positions/{account}/{symbol:path}", dependencies=[READERS], summary="A position limit")
async def get_position_limit(account: AccountPath, symbol: SymbolPath, risk: Risk) -> PositionLimitPublic:
    """404 ``position_limit_not_found`` when none is set."""
    found = risk.state.limits.position_limit(account, symbol)
    if found is None:
        raise ServiceError(404, "position_limit_not_found", f"no position limit for {account} in {symbol}")
    return position_limit_public(found)


@router.put("/positions/{account}/{symbol:path}", summary="Set a position limit (risk-officer)",
            responses={201: {"model": PositionLimitPublic, "description": "Created"}})
async def put_position_limit(
    account: AccountPath, symbol: SymbolPath, body: PositionLimitUpdate, response: Response, risk: Risk, who: Writer
) -> PositionLimitPublic:
    """Max absolute position in base units (201 when new)."""
    stored, created = await store_limits.put_position_limit(
        risk.pools["diversification"], who, account, symbol, body.max_position
    )
    await risk.refresh("limits")
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return position_limit_public(stored)


@router.delete("/positions/{account}/{symbol:path}", status_code=204, summary="Remove a position limit (risk-officer)")
async def delete_position_limit(account: AccountPath, symbol: SymbolPath, risk: Risk, who: Writer) -> Response:
    """No position limit any more."""
    if await store_limits.delete_position_limit(risk.pools["diversification"], who, account, symbol) is None:
        raise ServiceError(404, "position_limit_not_found", f"no position limit for {account} in {symbol}")
    await risk.refresh("limits")
    return Response(status_code=204)
