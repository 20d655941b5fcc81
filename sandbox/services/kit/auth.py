"""Token verification for every service, and service-to-service calls.

Access tokens are JWTs signed EdDSA (Ed25519) by auth-service with a ``kid``
header. Verification is local: :class:`TokenVerifier` fetches the JWKS once,
refetches on an unknown ``kid`` (rate-limited), and keeps a bounded LRU of
verified tokens so the hot path skips the signature check. Revocation is
checked on every request: whether ``auth:session:{sid}`` exists comes from a
local cache that the session Redis invalidates itself (client tracking, see
:mod:`sandbox.services.kit.sessions` for the guarantees), else from one ``PTTL``
pipelined with the other requests of the same event-loop tick; a logout is
seen by every service on the next request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from fastapi import params as fastapi_params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.sessions import TrackedSessions
from sandbox.services.kit.settings import KitSettings
from sandbox.services.kit.tracing import HTTPX_HOOKS

log = logging.getLogger("sandbox.services.kit.auth")

ISSUER = "aether-auth"
AUDIENCE = "aether"
ALGORITHM = "EdDSA"
ROLES = ("admin", "trader", "risk-officer", "viewer", "service")
SESSION_KEY = "auth:session:{sid}"
REQUIRED_CLAIMS = ["exp", "iat", "sub", "sid", "iss", "aud"]

#: Minimum seconds between JWKS fetches triggered by unknown kids (a forged kid must not DoS auth).
JWKS_REFETCH_INTERVAL_S = 5.0


def session_key(sid: str) -> str:
    """The Redis key whose existence keeps session ``sid`` live."""
    return f"auth:session:{sid}"


class InvalidToken(Exception):
    """The token is malformed, forged, expired, or not an access token."""


@dataclass(frozen=True)
class Principal:
    """Who made the request, from a verified access token."""

    subject: str
    roles: tuple[str, ...]
    sid: str
    kind: str
    scopes: tuple[str, ...] = ()
    expires_at: int = 0

    def has_role(self, *roles: str) -> bool:
        """True when the principal holds one of ``roles`` (``admin`` holds every role)."""
        return "admin" in self.roles or any(r in self.roles for r in roles)


def principal_from_claims(claims: dict[str, Any]) -> Principal:
    """Build a :class:`Principal` from verified claims; raise :class:`InvalidToken` on bad shapes."""
    if claims.get("typ") != "access":
        raise InvalidToken("not an access token")
    roles, scopes = claims.get("roles", []), claims.get("scope", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise InvalidToken("roles claim is not a list of strings")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise InvalidToken("scope claim is not a list of strings")
    sub, sid, kind = claims.get("sub"), claims.get("sid"), claims.get("kind")
    if not isinstance(sub, str) or not isinstance(sid, str) or kind not in ("user", "service"):
        raise InvalidToken("sub, sid or kind claim is invalid")
    return Principal(sub, tuple(roles), sid, kind, tuple(scopes), int(claims["exp"]))


class TokenVerifier:
    """Verifies access tokens against auth-service's JWKS, with a bounded verified-token cache."""

    def __init__(
        self,
        jwks_url: str | None = None,
        *,
        keys: dict[str, Any] | None = None,
        cache_size: int = 10_000,
        leeway_s: float = 5.0,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        """``jwks_url`` is fetched lazily; ``keys`` (a JWKS document) seeds or replaces fetching."""
        self.jwks_url = jwks_url
        self.cache_size = cache_size
        self.leeway_s = leeway_s
        self._keys: dict[str, Any] = {}
        self._cache: OrderedDict[str, Principal] = OrderedDict()
        self._last_fetch = 0.0
        self._lock = asyncio.Lock()
        self._http = http
        if keys is not None:
            self.set_jwks(keys)

    def set_jwks(self, jwks: dict[str, Any]) -> None:
        """Replace the known keys with those of a JWKS document (Ed25519 ``OKP`` keys only)."""
        found: dict[str, Any] = {}
        for jwk in jwks.get("keys", []):
            if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not jwk.get("kid"):
                continue
            try:
                found[jwk["kid"]] = jwt.PyJWK(jwk, algorithm=ALGORITHM).key
            except jwt.PyJWTError:
                log.warning("unusable JWKS key skipped", extra={"kid": jwk.get("kid")})
        self._keys = found

    @property
    def kids(self) -> set[str]:
        """Key ids currently known."""
        return set(self._keys)

    async def _refresh_keys(self, kid: str) -> None:
        """Fetch the JWKS because ``kid`` is unknown (at most every few seconds once keys are known)."""
        if self.jwks_url is None:
            return
        async with self._lock:
            if kid in self._keys:
                return  # fetched by a concurrent request while we waited
            now = time.monotonic()
            if now - self._last_fetch < (JWKS_REFETCH_INTERVAL_S if self._keys else 0.5):
                if not self._keys:
                    raise ServiceError(503, "auth_unavailable", "cannot fetch signing keys from auth-service")
                return
            self._last_fetch = now
            client = self._http or httpx.AsyncClient(timeout=3.0)
            try:
                resp = await client.get(self.jwks_url)
                resp.raise_for_status()
                self.set_jwks(resp.json())
            except (httpx.HTTPError, ValueError) as exc:
                log.warning("JWKS fetch failed", extra={"url": self.jwks_url, "error": str(exc)})
                raise ServiceError(503, "auth_unavailable", "cannot fetch signing keys from auth-service") from exc
            finally:
                if self._http is None:
                    await client.aclose()

    async def verify(self, token: str) -> Principal:
        """The principal of a valid, unexpired access token (signature checked); else :class:`InvalidToken`.

        Does not check revocation: see :func:`authenticated`.
        """
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + self.leeway_s > time.time():
                self._cache.move_to_end(token)
                return cached
            self._cache.pop(token, None)
            raise InvalidToken("token expired")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        kid = header.get("kid")
        if header.get("alg") != ALGORITHM or not isinstance(kid, str):
            raise InvalidToken("unsupported token header")
        key = self._keys.get(kid)
        if key is None:
            await self._refresh_keys(kid)
            key = self._keys.get(kid)
            if key is None:
                raise InvalidToken("unknown signing key")
        try:
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], audience=AUDIENCE, issuer=ISSUER,
                leeway=self.leeway_s, options={"require": REQUIRED_CLAIMS},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        principal = principal_from_claims(claims)
        if self.cache_size:
            self._cache[token] = principal
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return principal


class SessionChecker:
    """``await live(sid)``: does ``auth:session:{sid}`` exist right now?

    Over a plain TCP ``redis.asyncio`` client the answer comes from
    :class:`~sandbox.services.kit.sessions.TrackedSessions` (``self.raw``): a
    local cache of live sessions that Redis invalidates itself (client tracking),
    else one ``PTTL`` on a bare RESP3 connection of its own. Any other client
    (TLS, Unix socket, a test double) is asked every time through its own
    ``exists``/``pipeline``. Checks issued in the same event-loop tick are sent
    as one pipeline (one write, one read) instead of one round trip each.
    """

    MAX_BATCH = 64

    def __init__(self, redis: Any) -> None:
        """``redis`` is the session Redis (redis.asyncio)."""
        self.redis = redis
        self.raw = TrackedSessions.for_client(redis)
        self._pending: list[tuple[str, asyncio.Future[bool]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def live(self, sid: str) -> bool:
        """Whether session ``sid`` exists right now."""
        key = session_key(sid)
        if self.raw is not None and self.raw.cached(key):
            return True
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._pending.append((key, fut))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        elif len(self._pending) >= self.MAX_BATCH:
            self._flush()
        return await fut

    def _flush(self) -> None:
        if not self._pending:
            return  # already flushed because the batch filled up
        batch, self._pending = self._pending, []
        task = asyncio.ensure_future(self._run(batch))
        self._tasks.add(task)  # keep a reference until done
        task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[str, asyncio.Future[bool]]]) -> None:
        try:
            if self.raw is not None:
                keys = [key for key, _ in batch]
                try:
                    ttls = await self.raw.pttl(keys)
                except TimeoutError:
                    raise
                except OSError:  # a dropped connection (Redis restarted): reconnect once, as redis-py retries
                    ttls = await self.raw.pttl(keys)
                results = [ttl != -2 for ttl in ttls]
            elif len(batch) == 1:
                results = [await self.redis.exists(batch[0][0])]
            else:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, _ in batch:
                        pipe.exists(key)
                    results = await pipe.execute()
        except Exception as exc:
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for (_, fut), result in zip(batch, results, strict=True):
            if not fut.done():
                fut.set_result(bool(result))

    def close(self) -> None:
        """Close the raw connection, if any."""
        if self.raw is not None:
            self.raw.close()


def session_checker(state: Any) -> SessionChecker:
    """The app's :class:`SessionChecker` (created on first use over ``state.sessions``)."""
    checker = getattr(state, "session_checker", None)
    if checker is None or checker.redis is not state.sessions:
        if checker is not None:
            checker.close()
        checker = state.session_checker = SessionChecker(state.sessions)
    return checker


def close_session_checker(state: Any) -> None:
    """Close the app's session checker connection (at shutdown)."""
    checker = getattr(state, "session_checker", None)
    if checker is not None:
        checker.close()
        state.session_checker = None


_bearer = HTTPBearer(auto_error=False, description="Access token from auth-service (POST /v1/login).")

_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _unauthorized(message: str) -> ServiceError:
    return ServiceError(401, "unauthorized", message, headers=_UNAUTHORIZED)


async def authenticated(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """Dependency: the verified, unrevoked principal of the request's bearer token (else 401)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise _unauthorized("missing bearer token")
    return await _principal(request, credentials.credentials)


async def _principal(request: Request, token: str) -> Principal:
    state = request.app.state
    verifier: TokenVerifier | None = getattr(state, "verifier", None)
    if verifier is None:
        raise ServiceError(503, "auth_unavailable", "token verification is not configured")
    try:
        principal = await verifier.verify(token)
    except InvalidToken as exc:
        raise _unauthorized(f"invalid token: {exc}") from None
    try:
        live = await session_checker(state).live(principal.sid)
    except Exception as exc:  # redis down: fail closed, but as 503 (not the caller's fault)
        log.warning("session store unreachable", extra={"error": str(exc)})
        raise ServiceError(503, "session_store_unavailable", "cannot check the session") from None
    if not live:
        raise _unauthorized("session revoked or expired")
    return principal


class BearerPrincipal(HTTPBearer):
    """:func:`authenticated` as one dependency: reads the bearer token itself instead of through a
    sub-dependency (every level of FastAPI's dependency tree costs CPU on every request).

    It is still the ``HTTPBearer`` security scheme (same name and description), so the OpenAPI
    documents are unchanged, and it answers exactly as :func:`authenticated` does.
    """

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        """The verified, unrevoked principal of the request's bearer token (else 401)."""
        scheme, _, token = (request.headers.get("authorization") or "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized("missing bearer token")
        return await _principal(request, token)


current_principal = BearerPrincipal(auto_error=False, description=_bearer.model.description, scheme_name="HTTPBearer")
CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


@dataclass(frozen=True, eq=False)
class RoleRequirement(fastapi_params.Depends):
    """A dependency requiring one of ``roles``; usable as ``Depends(...)`` target or directly."""

    roles: frozenset[str] = frozenset()

    __hash__ = object.__hash__  # identity: ``dependency`` points back at self
    __eq__ = object.__eq__

    async def __call__(self, principal: CurrentPrincipal) -> Principal:
        """Return the principal when it holds a required role (admin always does), else 403."""
        if not principal.has_role(*self.roles):
            raise ServiceError(
                403, "forbidden", f"requires one of the roles: {', '.join(sorted(self.roles))}",
                detail={"required": sorted(self.roles), "held": list(principal.roles)},
            )
        return principal


def require_roles(*roles: str) -> RoleRequirement:
    """Dependency raising 403 unless the principal holds one of ``roles`` (``admin`` passes all).

    Works in all three spellings::

        dependencies=[require_roles("trader")]
        dependencies=[Depends(require_roles("trader"))]
        principal: Annotated[Principal, Depends(require_roles("trader"))]
    """
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles: {sorted(unknown)}")
    req = RoleRequirement(roles=frozenset(roles))
    object.__setattr__(req, "dependency", req)
    return req


class ServiceClient:
    """An ``httpx.AsyncClient`` that authenticates as the service account (client credentials).

    The token comes from ``POST {auth_url}/v1/service-tokens`` and is reused until
    shortly before it expires; a 401 answer triggers one fresh token and a retry.
    """

    REFRESH_MARGIN_S = 60.0

    def __init__(self, kit: KitSettings, *, base_url: str = "", timeout: float = 5.0, scopes: list[str] | None = None) -> None:
        """Requires ``kit.auth_url``, ``service_client_id`` and ``service_client_secret``."""
        if not kit.auth_url or not kit.service_client_id or not kit.service_client_secret:
            raise ValueError("ServiceClient needs AETHER_AUTH_URL, AETHER_SERVICE_CLIENT_ID and AETHER_SERVICE_CLIENT_SECRET")
        self._kit = kit
        self._scopes = scopes or []
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, event_hooks=dict(HTTPX_HOOKS))
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def token(self, *, fresh: bool = False) -> str:
        """A valid service access token (cached)."""
        async with self._lock:
            if not fresh and self._token and time.time() < self._expires - self.REFRESH_MARGIN_S:
                return self._token
            resp = await self._http.post(
                f"{self._kit.auth_url.rstrip('/')}/v1/service-tokens",  # type: ignore[union-attr]
                json={
                    "client_id": self._kit.service_client_id,
                    "client_secret": self._kit.service_client_secret,
                    "scope": self._scopes,
                },
            )
            if resp.status_code != 200:
                raise ServiceError(503, "auth_unavailable", f"service token request failed: HTTP {resp.status_code}")
            body = resp.json()
            self._token = body["access_token"]
            self._expires = time.time() + float(body.get("expires_in", 0))
            return self._token

    async def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request with the service bearer token; retry once on 401 with a fresh token."""
        base_headers = dict(kwargs.pop("headers", None) or {})
        for attempt in range(2):
            headers = {**base_headers, "Authorization": f"Bearer {await self.token(fresh=attempt > 0)}"}
            resp = await self._http.request(method, url, headers=headers, **kwargs)
            if resp.status_code != 401:
                return resp
        return resp

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET with the service token."""
        return await self.request("GET", url, **kwargs)

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """POST with the service token."""
        return await self.request("POST", url, **kwargs)

    async def put(self, url: str, **kwargs: Any) -> httpx.Response:
        """PUT with the service token."""
        return await self.request("PUT", url, **kwargs)

    async def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        """PATCH with the service token."""
        return await self.request("PATCH", url, **kwargs)

    async def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        """DELETE with the service token."""
        return await self.request("DELETE", url, **kwargs)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def __aenter__(self) -> ServiceClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
