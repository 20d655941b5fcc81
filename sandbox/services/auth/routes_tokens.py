"""Tokens: ``POST /v1/service-tokens`` (client credentials), ``POST /v1/introspect``."""

from __future__ import annotations

import hmac
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from jwt.utils import base64url_decode

from sandbox.services.auth.models import Introspection, IntrospectRequest, ServiceToken, ServiceTokenRequest
from sandbox.services.auth.routes_sessions import locked_error
from sandbox.services.auth.tokens import AuthState, auth_state
from sandbox.services.kit import ServiceError, require_roles
from sandbox.services.kit.auth import InvalidToken, session_checker
from sandbox.services.kit.hot import HotCall, HotRoute

log = logging.getLogger("sandbox.services.auth")
router = APIRouter(prefix="/v1", tags=["tokens"])
State = Annotated[AuthState, Depends(auth_state)]

_DUMMY_SECRET = "x" * 32
_INACTIVE = b'{"active":false}'


@router.post("/service-tokens", response_model=ServiceToken, responses={401: {}, 400: {}, 423: {}})
async def service_token(body: ServiceTokenRequest, state: State) -> ServiceToken:
    """An access token (role ``service``) for a service account from AUTH_SERVICE_ACCOUNTS."""
    who = f"svc:{body.client_id}"
    if locked := await state.lockout.locked_for(who):
        raise locked_error(locked)
    account = state.settings.service_accounts.get(body.client_id)
    expected = account.secret.get_secret_value() if account else _DUMMY_SECRET
    matches = hmac.compare_digest(expected.encode(), body.client_secret.encode())
    if account is None or not matches:
        if locked_now := await state.lockout.failure(who):
            raise locked_error(locked_now)
        raise ServiceError(401, "invalid_client", "invalid client id or secret")
    requested = list(dict.fromkeys(body.scope))
    if account.scopes is not None:
        extra = [s for s in requested if s not in account.scopes]
        if extra:
            raise ServiceError(400, "invalid_scope", "scope not allowed for this client", detail={"not_allowed": extra})
        granted = requested or list(account.scopes)
    else:
        granted = requested
    await state.lockout.success(who)
    ttl = state.settings.service_token_ttl_s
    session = await state.sessions.create(body.client_id, "service", ttl + 30, with_refresh=False)
    token = state.issue(subject=body.client_id, roles=["service"], sid=session.sid, kind="service", scopes=granted, ttl_s=ttl)
    return ServiceToken(access_token=token, expires_in=ttl, scope=granted)


@router.post(
    "/introspect", response_model=Introspection, dependencies=[require_roles("service")], responses={401: {}, 403: {}}
)
async def introspect(body: IntrospectRequest, request: Request) -> Response:
    """RFC 7662-like: ``{"active": false}`` or ``{"active": true, ...claims}``. Callers: services and admins."""
    return Response(await _introspect(body.token, request.app.state), media_type="application/json")


async def _introspect(token: str, state: Any) -> bytes:
    try:
        await state.verifier.verify(token)
    except InvalidToken:
        return _INACTIVE
    claims = json.loads(base64url_decode(token.split(".")[1]))  # verified just above
    if not await session_checker(state).live(claims["sid"]):
        return _INACTIVE
    # Serialised here (the claims are plain JSON already): FastAPI's response validation would be pure overhead.
    return json.dumps({"active": True, **claims}, ensure_ascii=False, separators=(",", ":")).encode()


async def _introspect_hot(call: HotCall) -> bytes:
    """:func:`introspect` on the kit's fast path (caller's token, role and body already checked)."""
    return await _introspect(call.body.token, call.state)


#: The fast path of ``POST /v1/introspect`` (see sandbox.services.kit.hot).
HOT = HotRoute("POST", "/v1/introspect", _introspect_hot, roles=("service",), body=IntrospectRequest)
