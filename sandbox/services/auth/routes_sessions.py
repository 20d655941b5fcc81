"""Sessions: ``POST /v1/login``, ``POST /v1/refresh``, ``POST /v1/logout``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Response

from sandbox.services.auth import users
from sandbox.services.auth.models import LoginRequest, RefreshRequest, TokenPair
from sandbox.services.auth.passwords import hash_password, verify_password
from sandbox.services.auth.tokens import AuthState, auth_state
from sandbox.services.kit import CurrentPrincipal, Db, ServiceError

log = logging.getLogger("sandbox.services.auth")
router = APIRouter(prefix="/v1", tags=["sessions"])
State = Annotated[AuthState, Depends(auth_state)]

_BAD_CREDENTIALS = ServiceError(401, "invalid_credentials", "invalid username or password")


def locked_error(seconds: int) -> ServiceError:
    """423 with Retry-After."""
    return ServiceError(
        423, "account_locked", "too many failed attempts; try again later",
        detail={"retry_after_s": seconds}, headers={"Retry-After": str(max(seconds, 1))},
    )


@router.post("/login", response_model=TokenPair, responses={401: {}, 403: {}, 423: {}})
async def login(body: LoginRequest, db: Db, state: State) -> TokenPair:
    """Exchange username and password for an access token and a refresh token."""
    who = f"user:{body.username}"
    if locked := await state.lockout.locked_for(who):
        raise locked_error(locked)
    row = await users.get_with_hash(db, body.username)
    ok, rehash = await verify_password(row["password_hash"] if row else None, body.password)
    if not ok or row is None:
        locked_now = await state.lockout.failure(who)
        log.info("login failed", extra={"username": body.username, "locked": bool(locked_now)})
        if locked_now:
            raise locked_error(locked_now)
        raise _BAD_CREDENTIALS
    if row["disabled"]:
        raise ServiceError(403, "account_disabled", "this account is disabled")
    await state.lockout.success(who)
    if rehash:
        await users.set_hash(db, body.username, await hash_password(body.password))
    cfg = state.settings
    session = await state.sessions.create(body.username, "user", cfg.refresh_ttl_s, with_refresh=True)
    token = state.issue(
        subject=body.username, roles=list(row["roles"]), sid=session.sid, kind="user", scopes=[], ttl_s=cfg.access_ttl_s
    )
    log.info("login", extra={"username": body.username, "sid": session.sid})
    assert session.refresh_token is not None
    return TokenPair(
        access_token=token, refresh_token=session.refresh_token,
        expires_in=cfg.access_ttl_s, refresh_expires_in=cfg.refresh_ttl_s,
    )


@router.post("/refresh", response_model=TokenPair, responses={401: {}})
async def refresh(body: RefreshRequest, db: Db, state: State) -> TokenPair:
    """A new access token and a rotated refresh token (the old one stops working)."""
    rotated = await state.sessions.rotate_refresh(body.refresh_token)
    if rotated is None:
        raise ServiceError(401, "invalid_refresh_token", "refresh token invalid, expired or revoked")
    sid, session, new_refresh = rotated
    username = session.get("sub", "")
    row = await users.get(db, username)
    if row is None or row["disabled"]:
        await state.sessions.revoke(sid, username)
        raise ServiceError(401, "invalid_refresh_token", "the account no longer exists or is disabled")
    ttl_left = max(int(await state.sessions.r.ttl(f"auth:session:{sid}")), 0)
    cfg = state.settings
    token = state.issue(subject=username, roles=list(row["roles"]), sid=sid, kind="user", scopes=[], ttl_s=cfg.access_ttl_s)
    return TokenPair(access_token=token, refresh_token=new_refresh, expires_in=cfg.access_ttl_s, refresh_expires_in=ttl_left)


@router.post("/logout", status_code=204, response_class=Response, responses={401: {}})
async def logout(principal: CurrentPrincipal, state: State) -> Response:
    """Revoke the caller's session: its access and refresh tokens stop working in every service."""
    await state.sessions.revoke(principal.sid, principal.subject if principal.kind == "user" else None)
    log.info("logout", extra={"subject": principal.subject, "sid": principal.sid})
    return Response(status_code=204)
