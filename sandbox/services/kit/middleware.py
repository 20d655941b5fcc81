"""Pure ASGI middlewares (cheap on the hot path): request id + metrics + body-size limit + hot routes
in one layer (each layer costs CPU on every request), and the body limit alone for other apps."""

from __future__ import annotations

import itertools
import json
import os
import re
import time
import uuid
from typing import Any

from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.services.kit.hot import HotRoutes
from sandbox.services.kit.logs import request_id_var
from sandbox.services.kit.metrics import AppMetrics, method_label, route_template
from sandbox.services.kit.tracing import EXCLUDED_PATHS, Tracing, extract_context

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def incoming_request_id(headers: list[tuple[bytes, bytes]]) -> str:
    """The caller's X-Request-ID when it is sane (short, safe characters), else a new one."""
    for name, value in headers:
        if name == b"x-request-id":
            try:
                text = value.decode("ascii")
            except UnicodeDecodeError:
                break
            if _VALID_REQUEST_ID.match(text):
                return text
            break
    return new_request_id()


_ID_PREFIX = uuid.uuid4().hex[:16]
_id_counter = itertools.count(1)


def _new_prefix() -> None:
    """A forked child draws its own prefix, so two processes never hand out the same id."""
    global _ID_PREFIX
    _ID_PREFIX = uuid.uuid4().hex[:16]


os.register_at_fork(after_in_child=_new_prefix)


def new_request_id() -> str:
    """A fresh request id: 32 hex digits, a random per-process prefix and a counter (unique, cheap)."""
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


class RequestContextMiddleware:
    """Sets the request id (in and out as X-Request-ID), records HTTP metrics by route template and,
    when tracing is on, wraps the request in a SERVER span (not ``/healthz`` nor ``/metrics``).

    With ``max_bytes`` it also applies :class:`BodyLimitMiddleware`'s limit (same answers), and with
    ``hot`` it serves the app's hot routes (:mod:`sandbox.services.kit.hot`) inside all of the above.
    """

    def __init__(self, app: ASGIApp, metrics: AppMetrics, tracing: Tracing | None = None,
                 max_bytes: int | None = None, hot: HotRoutes | None = None) -> None:
        """Wrap ``app``; observations go to ``metrics``, spans to ``tracing`` (None: no spans)."""
        self.app = app
        self.metrics = metrics
        self.tracing = tracing
        self.max_bytes = max_bytes
        self.hot = hot

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.tracing is not None and scope.get("path") not in EXCLUDED_PATHS:
            await self._traced(scope, receive, send)
            return
        await self._call(scope, receive, send)

    async def _traced(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The request inside a SERVER span continuing the caller's trace context."""
        assert self.tracing is not None
        method = method_label(scope["method"])
        with self.tracing.tracer.start_as_current_span(
            method, context=extract_context(scope.get("headers", [])), kind=SpanKind.SERVER,
            record_exception=False, set_status_on_exception=True,
        ) as span:
            status = 500  # unless the app answers: an exception escaping it becomes a 500
            try:
                status = await self._call(scope, receive, send)
            finally:
                route = route_template(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Run the app with the request id set; record the metrics; return the response status."""
        rid = incoming_request_id(scope.get("headers", []))
        token = request_id_var.set(rid)
        status = 500
        started = time.perf_counter()
        header = (b"x-request-id", rid.encode("ascii"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        try:
            if self.max_bytes is not None:
                refused = _declared_size_refused(scope, self.max_bytes)
                if refused is not None:
                    await _send_error(send_wrapper, *refused)
                    return status
                receive = _limited(receive, self.max_bytes)
            hot = self.hot
            if hot is None:
                await self.app(scope, receive, send_wrapper)
            elif (learned := hot.lookup(scope)) is not None:
                fallback = await hot.serve(learned, scope, receive, send_wrapper)
                if fallback is not None:
                    await self.app(scope, fallback, send_wrapper)
            else:
                candidate = hot.candidate(scope)
                await self.app(scope, receive, send_wrapper)
                if candidate is not None:
                    hot.learn(scope, *candidate)
        finally:
            self.metrics.observe(
                method_label(scope["method"]), route_template(scope), status, time.perf_counter() - started
            )
            request_id_var.reset(token)
        return status


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when the streamed body exceeds the limit (handled as 413)."""

    def __init__(self, limit: int) -> None:
        """``limit`` in bytes."""
        super().__init__(413, f"request body larger than {limit} bytes")


class BodyLimitMiddleware:
    """Rejects bodies over ``max_bytes`` with 413: early on Content-Length, else while streaming."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        """Wrap ``app`` with a body limit."""
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = _declared_size_refused(scope, self.max_bytes)
        if refused is not None:
            await _send_error(send, *refused)
            return
        await self.app(scope, _limited(receive, self.max_bytes), send)


def _declared_size_refused(scope: Scope, max_bytes: int) -> tuple[int, str, str] | None:
    """(status, code, message) when the Content-Length header is invalid or over ``max_bytes``."""
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                return 400, "bad_request", "invalid Content-Length header"
            if declared > max_bytes:
                return 413, "request_entity_too_large", f"request body larger than {max_bytes} bytes"
            return None
    return None


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` raising :class:`BodyTooLarge` once the streamed body exceeds ``limit``."""
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited_receive


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    """Send a uniform error response straight from a middleware."""
    body: Any = json.dumps({"error": code, "message": message, "detail": None}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
