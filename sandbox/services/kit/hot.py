"""Hot routes: a service's busiest endpoints answered without FastAPI's per-request machinery.

A check endpoint's own work is a few dictionary lookups; what it paid was the
framework around it (routing through every router, the dependency tree for the
token and the role, body parsing through ``Request``, exception and exit-stack
layers): about two thirds of its CPU. A :class:`HotRoute` serves the *happy
path* of one endpoint straight from the kit's middleware, and hands everything
else to FastAPI, which answers exactly as it always did:

* the route is taken only for a (method, path) that FastAPI itself has already
  routed to this route's template once (the first request of each path goes
  through FastAPI; its ``scope["route"]`` is remembered, so shadowing routes and
  converters are FastAPI's decision, never a second implementation of routing);
* the bearer token must verify (the same :class:`~sandbox.services.kit.auth.TokenVerifier`),
  its session must be live (the same session check, revocation included) and
  the principal must hold one of ``roles`` (``admin`` holds all);
* a body must be ``application/json`` with a Content-Length within the limit,
  parse (``Decimal`` for fractions when ``decimal``, by the same
  :func:`~sandbox.services.kit.decimal_json.loads` as
  :class:`~sandbox.services.kit.decimal_json.DecimalRoute`) and validate with the
  same pydantic model;
* the handler may still decline (return :data:`FALLBACK`) before doing anything.

Any of these failing replays the request (body included) through FastAPI, so
every error answer (401, 403, 422, 503, ...) is FastAPI's own. Exceptions the
handler raises go to the app's exception handlers, as from an endpoint.
Metrics, request id, logs and traces are the kit middleware's, around both paths;
``scope["route"]`` is set so they carry the route template.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import compile_path
from starlette.types import Message, Receive, Scope, Send

from sandbox.services.kit import decimal_json
from sandbox.services.kit.auth import InvalidToken, Principal, session_checker

log = logging.getLogger("sandbox.services.kit.hot")

#: Returned by a hot handler that wants FastAPI to answer instead (before any side effect).
FALLBACK: Any = object()
#: Most distinct paths remembered per app (beyond: those paths keep going through FastAPI).
MAX_LEARNED_PATHS = 10_000
_JSON = b"application/json"


class HotAnswer(NamedTuple):
    """A JSON answer: ``body`` with ``status``; ``headers`` (lowercase names) precede content-length/-type,
    as in Starlette's ``Response``."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[bytes, bytes], ...] = ()


@dataclass(slots=True)
class HotCall:
    """What a hot handler gets: the app, the verified principal, the validated body, the path parameters."""

    app: Any
    principal: Principal
    body: Any
    params: dict[str, Any]
    headers: list[tuple[bytes, bytes]]
    scope: Scope

    @property
    def state(self) -> Any:
        """``app.state``."""
        return self.app.state

    def header(self, name: bytes) -> bytes | None:
        """The first value of request header ``name`` (lowercase), else ``None``."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


HotHandler = Callable[[HotCall], Awaitable[Any]]


@dataclass
class HotRoute:
    """One endpoint's fast path: ``method`` and ``path`` exactly as the FastAPI route declares them."""

    method: str
    path: str
    handler: HotHandler
    #: Roles of which the principal needs one (``admin`` passes); empty: any authenticated principal.
    roles: tuple[str, ...] = ()
    #: The pydantic model of the JSON body, or ``None`` for a route without body.
    body: Any = None
    #: Parse JSON fractions as ``Decimal`` (the route uses ``DecimalRoute``).
    decimal: bool = False
    _regex: Any = field(init=False, repr=False)
    _convertors: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._regex, _, self._convertors = compile_path(self.path)

    def params(self, path: str) -> dict[str, Any] | None:
        """The converted path parameters when ``path`` fits the template, else ``None``."""
        match = self._regex.match(path)
        if match is None:
            return None
        return {k: self._convertors[k].convert(v) for k, v in match.groupdict().items()}


class _Learned(NamedTuple):
    hot: HotRoute
    route: Any
    params: dict[str, Any]


class HotRoutes:
    """The hot routes of one app and the (method, path) pairs FastAPI confirmed for them."""

    def __init__(self, routes: Sequence[HotRoute], max_bytes: int) -> None:
        """``max_bytes``: bodies above it are left to FastAPI (and the body limit)."""
        self.routes = list(routes)
        self.max_bytes = max_bytes
        self.methods = frozenset(r.method for r in self.routes)
        self.learned: dict[tuple[str, str], _Learned] = {}

    def lookup(self, scope: Scope) -> _Learned | None:
        """The confirmed hot route for this request's method and path, if any."""
        if scope.get("root_path"):
            return None
        return self.learned.get((scope["method"], scope["path"]))

    def candidate(self, scope: Scope) -> tuple[HotRoute, dict[str, Any]] | None:
        """A hot route whose template fits this not yet confirmed request (checked after FastAPI answers)."""
        method = scope["method"]
        if method not in self.methods or scope.get("root_path") or len(self.learned) >= MAX_LEARNED_PATHS:
            return None
        for hot in self.routes:
            if hot.method == method and (params := hot.params(scope["path"])) is not None:
                return hot, params
        return None

    def learn(self, scope: Scope, hot: HotRoute, params: dict[str, Any]) -> None:
        """Remember the path when FastAPI routed it to ``hot``'s template."""
        route = scope.get("route")
        if getattr(route, "path", None) == hot.path and hot.method in (getattr(route, "methods", None) or ()):
            self.learned[(scope["method"], scope["path"])] = _Learned(hot, route, params)

    async def serve(self, learned: _Learned, scope: Scope, receive: Receive, send: Send) -> Receive | None:
        """Answer the request on the fast path and return ``None``; else return the ``receive`` FastAPI must use."""
        hot = learned.hot
        app = scope["app"]
        state = app.state
        authorization = content_type = content_length = None
        headers = scope["headers"]
        for name, value in headers:  # the first of each wins, as in Starlette's ``Headers.get``
            if name == b"authorization":
                authorization = authorization or value
            elif name == b"content-type":
                content_type = content_type or value
            elif name == b"content-length":
                content_length = content_length or value
        principal = await _principal(state, authorization)
        if principal is None or (hot.roles and not principal.has_role(*hot.roles)):
            return receive
        body: Any = None
        if hot.body is not None:
            if content_type != _JSON or content_length is None:
                return receive
            try:
                declared = int(content_length)
            except ValueError:
                return receive
            messages, raw = await _read_body(receive, declared, self.max_bytes)
            replay = _replay(messages, receive)
            if raw is None:
                return replay
            try:
                doc = decimal_json.loads(raw) if hot.decimal else json.loads(raw)
                if type(doc) is not dict:
                    return replay
                body = hot.body.model_validate(doc)
            except Exception:  # FastAPI's own parsing and validation give the exact error answer
                return replay
            receive = replay
        params = dict(learned.params)  # the learned dict is shared by every request of the path
        scope["route"] = learned.route
        scope["path_params"] = params
        try:
            answer = await hot.handler(HotCall(app, principal, body, params, headers, scope))
        except Exception as exc:
            handler = _exception_handler(app, exc)
            if handler is None:
                raise
            answer = await handler(Request(scope, receive), exc)
        if answer is FALLBACK:
            return receive
        if type(answer) is bytes:
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", b"%d" % len(answer)), (b"content-type", _JSON)]})
            await send({"type": "http.response.body", "body": answer})
        elif isinstance(answer, HotAnswer):
            await send({"type": "http.response.start", "status": answer.status, "headers": [
                *answer.headers, (b"content-length", b"%d" % len(answer.body)), (b"content-type", _JSON)]})
            await send({"type": "http.response.body", "body": answer.body})
        else:
            assert isinstance(answer, Response), f"hot handler answered {type(answer).__name__}"
            await answer(scope, receive, send)
        return None


async def _principal(state: Any, authorization: bytes | None) -> Principal | None:
    """The verified, live principal of a bearer token, or ``None`` for anything FastAPI should answer."""
    if authorization is None:
        return None
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    token = token.strip()
    verifier = getattr(state, "verifier", None)
    if scheme.lower() != "bearer" or not token or verifier is None:
        return None
    try:
        principal = await verifier.verify(token)
        live = await session_checker(state).live(principal.sid)
    except (InvalidToken, Exception):  # noqa: BLE001 - 401/503 are FastAPI's to answer
        return None
    return principal if live else None


async def _read_body(receive: Receive, declared: int, limit: int) -> tuple[list[Any], bytes | None]:
    """The messages read (an exception ``receive`` raised is kept as the last one, for the replay to
    raise again) and the body (``None`` when it is not a complete body of the declared size)."""
    messages: list[Any] = []
    if declared > limit or declared <= 0:
        return messages, None
    chunks = []
    size = 0
    while True:
        try:
            message = await receive()
        except Exception as exc:  # e.g. the body limit: FastAPI's path meets it at the same point
            messages.append(exc)
            return messages, None
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > declared:
            return messages, None
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size != declared:
        return messages, None
    return messages, chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(messages: list[Any], receive: Receive) -> Receive:
    """A ``receive`` that hands out ``messages`` again (raising a kept exception), then the real ones."""
    if not messages:
        return receive
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            item = pending.pop(0)
            if isinstance(item, BaseException):
                raise item
            return item
        return await receive()

    return replay


def _exception_handler(app: Any, exc: Exception) -> Callable[..., Awaitable[Response]] | None:
    """The app's handler for ``exc`` as Starlette's ExceptionMiddleware picks it (``Exception`` stays
    with ServerErrorMiddleware, as for an endpoint)."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None
