"""Token verification for every service, and service-to-service calls.

Access tokens are JWTs signed EdDSA (Ed25519) by auth-service with a ``kid``
header. Verification is local: :class:`TokenVerifier` fetches the JWKS once,
refetches on an unknown ``kid`` (rate-limited), and keeps a bounded LRU of
verified tokens so the hot path skips the signature check. Revocation is
*not* cached: every request does one ``EXISTS auth:session:{sid}`` on the
session Redis (pipelined with the other requests of the same event-loop tick,
over a bare RESP connection), so a logout is seen by every service on the next
request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request
from fastapi import params as fastapi_params
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandbox.services.kit.errors import ServiceError
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


class _ExistsProtocol(asyncio.Protocol):
    """One plain-TCP connection to the session Redis answering pipelined ``EXISTS`` (RESP2 integer replies).

    Commands are written back to back and their replies matched in order, with no
    per-command client machinery: the session check is on every authenticated
    request, and redis-py's asyncio client costs several times the exchange itself.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiters: deque[asyncio.Future[Any]] = deque()
        self.buffer = b""
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer + data if self.buffer else data
        start = 0
        while True:
            end = buffer.find(b"\r\n", start)
            if end < 0:
                break
            line, start = buffer[start:end], end + 2
            if not self.waiters:
                self.fail(ConnectionError("session Redis sent an unexpected reply"))
                return
            fut = self.waiters.popleft()
            kind = line[:1]
            if kind == b":":
                value: Any = int(line[1:])
            elif kind == b"+":
                value = line[1:].decode()
            elif kind == b"-":
                value = ResponseError(line[1:].decode(errors="replace"))
            else:  # bulk or aggregate replies never answer EXISTS, AUTH or SELECT
                self.fail(ConnectionError(f"session Redis sent an unexpected reply type {kind!r}"))
                return
            if not fut.done():
                if isinstance(value, Exception):
                    fut.set_exception(value)
                else:
                    fut.set_result(value)
        self.buffer = buffer[start:]

    def connection_lost(self, exc: Exception | None) -> None:
        self.fail(ConnectionError(f"session Redis connection lost: {exc or 'closed by peer'}"))

    def fail(self, exc: Exception) -> None:
        """Fail every pending command and close (the next check reconnects)."""
        self.lost = self.lost or exc
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_exception(exc)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()


def _command(*parts: str) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        raw = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(raw), raw))
    return b"".join(out)


class ResponseError(Exception):
    """The session Redis answered a command with an error."""


class RawExists:
    """``EXISTS`` for many keys in one write over one lazily (re)connected plain-TCP connection."""

    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 2.0, timeout: float = 5.0) -> None:
        """Where the session Redis is and how to log in; timeouts in seconds (each reply within ``timeout``)."""
        self.host, self.port, self.db = host, port, db
        self.username, self.password = username, password
        self.connect_timeout, self.timeout = connect_timeout, timeout
        self._proto: _ExistsProtocol | None = None
        self._connecting: asyncio.Future[_ExistsProtocol] | None = None

    @classmethod
    def for_client(cls, redis: Any) -> RawExists | None:
        """The raw client for a plain ``redis.asyncio.Redis`` over TCP, else ``None`` (TLS, sockets, fakes)."""
        from redis.asyncio.connection import Connection

        pool = getattr(redis, "connection_pool", None)
        if pool is None or getattr(pool, "connection_class", None) is not Connection:
            return None
        kw = pool.connection_kwargs
        if "host" not in kw:
            return None
        return cls(kw["host"], int(kw.get("port", 6379)), db=int(kw.get("db", 0) or 0), username=kw.get("username"),
                   password=kw.get("password"), connect_timeout=float(kw.get("socket_connect_timeout") or 2.0),
                   timeout=float(kw.get("socket_timeout") or 5.0))

    async def _connected(self) -> _ExistsProtocol:
        proto = self._proto
        if proto is not None and proto.lost is None:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(self._connecting)
        finally:
            if self._connecting is not None and self._connecting.done():
                self._connecting = None

    async def _connect(self) -> _ExistsProtocol:
        loop = asyncio.get_running_loop()
        _, proto = await asyncio.wait_for(
            loop.create_connection(_ExistsProtocol, self.host, self.port), self.connect_timeout)
        setup: list[bytes] = []
        if self.password:
            setup.append(_command("AUTH", *([self.username] if self.username else []), self.password))
        if self.db:
            setup.append(_command("SELECT", str(self.db)))
        if setup:
            waiters = [loop.create_future() for _ in setup]
            proto.waiters.extend(waiters)
            assert proto.transport is not None
            proto.transport.write(b"".join(setup))
            try:
                await asyncio.wait_for(asyncio.gather(*waiters), self.timeout)
            except BaseException:
                proto.fail(ConnectionError("session Redis refused the login or database selection"))
                raise
        self._proto = proto
        return proto

    async def exists(self, keys: list[str]) -> list[int]:
        """``EXISTS key`` for each key, in order (one write, replies pipelined)."""
        proto = await self._connected()
        loop = asyncio.get_running_loop()
        waiters = [loop.create_future() for _ in keys]
        proto.waiters.extend(waiters)
        assert proto.transport is not None
        proto.transport.write(b"".join(
            b"*2\r\n$6\r\nEXISTS\r\n$%d\r\n%s\r\n" % (len(raw), raw) for raw in (k.encode() for k in keys)))
        last = waiters[-1]
        timer = loop.call_later(self.timeout, _expire, proto, last, self.timeout)
        try:
            return [await w for w in waiters]
        finally:
            timer.cancel()
            for w in waiters:  # one failure fails them all: retrieve every exception, not only the first
                if w.done() and not w.cancelled():
                    w.exception()

    def close(self) -> None:
        """Close the connection (a later call reconnects)."""
        if self._proto is not None:
            self._proto.fail(ConnectionError("session checker closed"))
            self._proto = None


def _expire(proto: _ExistsProtocol, last: asyncio.Future[Any], timeout: float) -> None:
    if not last.done():
        proto.fail(TimeoutError(f"session Redis did not answer within {timeout:g} s"))


class SessionChecker:
    """``await live(sid)``: one ``EXISTS auth:session:{sid}`` per call, never cached.

    Checks issued in the same event-loop tick are sent as one pipeline (one
    write, one read) instead of one round trip each. Over a plain TCP
    ``redis.asyncio`` client the commands go through :class:`RawExists` (a bare
    RESP exchange on its own connection); any other client (TLS, Unix socket,
    a test double) is used through its own ``exists``/``pipeline``, where a lone
    request is a plain EXISTS.
    """

    MAX_BATCH = 64

    def __init__(self, redis: Any) -> None:
        """``redis`` is the session Redis (redis.asyncio)."""
        self.redis = redis
        self.raw = RawExists.for_client(redis)
        self._pending: list[tuple[str, asyncio.Future[bool]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def live(self, sid: str) -> bool:
        """Whether session ``sid`` exists right now."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[bool] = loop.create_future()
        self._pending.append((session_key(sid), fut))
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
                    results = await self.raw.exists(keys)
                except TimeoutError:
                    raise
                except OSError:  # a dropped connection (Redis restarted): reconnect once, as redis-py retries
                    results = await self.raw.exists(keys)
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
