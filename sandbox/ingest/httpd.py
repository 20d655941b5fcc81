"""A tiny asyncio HTTP/1.1 server for the ingest's endpoints (no web framework: 100m CPU, 128 MiB).

One request per connection (``Connection: close``), bodies up to 64 KiB, JSON
in and out.  Routes are ``(method, path) -> async handler(body, query) -> (status, content type, bytes)``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import parse_qsl
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("sandbox.ingest.httpd")

Response = tuple[int, str, bytes]
Handler = Callable[[bytes, dict[str, str]], Awaitable[Response]]

MAX_BODY = 65_536
REASONS = {200: "OK", 202: "Accepted", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Payload Too Large", 500: "Internal Server Error", 503: "Service Unavailable"}
JSON = "application/json"


def json_response(status: int, data: Any) -> Response:
    """A JSON response."""
    return status, JSON, json.dumps(data, default=str).encode()


class HttpServer:
    """Serves ``routes`` on ``host:port`` until closed."""

    def __init__(self, routes: dict[tuple[str, str], Handler], host: str, port: int) -> None:
        self.routes = routes
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Bind and start serving."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=MAX_BODY)
        self.port = self._server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Stop accepting and close the listener."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, ctype, payload = await asyncio.wait_for(self._handle(reader), timeout=30.0)
        except TimeoutError:
            status, ctype, payload = json_response(408, {"error": "request timed out"})
        except Exception as exc:  # noqa: BLE001 - one bad request must not take the ingest down
            log.exception("request failed")
            status, ctype, payload = json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        head = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        try:
            writer.write(head.encode() + payload)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader) -> Response:
        request_line = await reader.readline()
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3:
            return json_response(400, {"error": "malformed request line"})
        method, target, _ = parts
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    return json_response(400, {"error": "bad Content-Length"})
        if length > MAX_BODY:
            return json_response(413, {"error": f"body over {MAX_BODY} bytes"})
        body = await reader.readexactly(length) if length else b""
        path, _, query = target.partition("?")
        handler = self.routes.get((method, path))
        if handler is None:
            allowed = [m for (m, p) in self.routes if p == path]
            if allowed:
                return json_response(405, {"error": f"{method} not allowed; use {', '.join(allowed)}"})
            return json_response(404, {"error": f"no route {path}"})
        return await handler(body, dict(parse_qsl(query)))
