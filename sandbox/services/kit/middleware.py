"""Pure ASGI middlewares (cheap on the hot path): request id + metrics, body-size limit."""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sandbox.services.kit.logs import request_id_var
from sandbox.services.kit.metrics import AppMetrics, method_label, route_template

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
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Sets the request id (in and out as X-Request-ID) and records HTTP metrics by route template."""

    def __init__(self, app: ASGIApp, metrics: AppMetrics) -> None:
        """Wrap ``app``; observations go to ``metrics``."""
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
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
            await self.app(scope, receive, send_wrapper)
        finally:
            self.metrics.observe(
                method_label(scope["method"]), route_template(scope), status, time.perf_counter() - started
            )
            request_id_var.reset(token)


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
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_error(send, 400, "bad_request", "invalid Content-Length header")
                    return
                if declared > self.max_bytes:
                    await _send_error(
                        send, 413, "request_entity_too_large", f"request body larger than {self.max_bytes} bytes"
                    )
                    return
                break
        received = 0
        limit = self.max_bytes

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


async def _send_error(send: Send, status: int, code: str, message: str) -> None:
    """Send a uniform error response straight from a middleware."""
    body: Any = json.dumps({"error": code, "message": message, "detail": None}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})
