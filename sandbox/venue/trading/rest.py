"""``POST /0/private/<Method>``: Kraken's private REST API over HTTP, with the scripted faults.

Each call is a form-encoded (or JSON) POST signed with ``API-Key`` and
``API-Sign``; the answer is always HTTP 200 with ``{"error": [...],
"result": ...}`` (``result`` only on success), numbers as Kraken writes them.
Order of checks, as at Kraken: the method exists, the key is known, the nonce
is well formed, the signature matches, the nonce is new for the key; then the
faults drawn for the call, the REST rate counter, and the method itself.

A dropped response (fault ``drop`` / ``drop_after_accept``) resets the TCP
connection without an answer (``mode: reset``; under uvicorn, whose request
cycle exposes the socket), holds the request for ``hold_s`` first (``mode:
hang``), or answers a CDN-style 5xx page (``mode: http``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from sandbox.venue.public_rest import dumps_exact
from sandbox.venue.trading.errors import INTERNAL_ERROR, UNKNOWN_METHOD, KrakenError
from sandbox.venue.trading.private_api import PrivateApi

if TYPE_CHECKING:
    from sandbox.venue.trading.faults import FaultSpec
    from sandbox.venue.trading.venue import TradingVenue

log = logging.getLogger("sandbox.venue.trading.rest")

PREFIX = "/0/private"


def kraken_response(result: Any = None, errors: list[str] | None = None) -> Response:
    """Kraken's envelope with HTTP 200: ``{"error": [...], "result": ...}``."""
    body: dict[str, Any] = {"error": errors or []}
    if not errors:
        body["result"] = result
    return Response(content=dumps_exact(body), media_type="application/json")


class DropResponse(Exception):
    """Raised to lose the response where the server offers no socket to reset (an in-process ASGI client)."""


def private_router(venue: TradingVenue) -> APIRouter:
    """The router for ``/0/private/*``."""
    api = PrivateApi(venue)
    router = APIRouter(prefix=PREFIX, tags=["private trading (Kraken)"])

    @router.post("/{method}", summary="A Kraken private method (form-encoded, signed)")
    async def private(method: str, request: Request) -> Response:
        """Authenticate, draw faults, run the method, answer in Kraken's envelope."""
        if method not in api.methods:
            return kraken_response(errors=[UNKNOWN_METHOD])
        body = await request.body()
        headers = request.headers
        try:
            key, params = venue.authenticate(request.url.path, headers.get("api-key"), headers.get("api-sign"),
                                             body, headers.get("content-type", ""))
        except KrakenError as exc:
            return kraken_response(errors=exc.errors)
        faults = venue.faults.for_request(method, key.key)
        if faults.any:
            log.info("faults %s on %s for %s", faults.rule_ids, method, key.key[:8])
        if faults.latency_before_s:
            await asyncio.sleep(faults.latency_before_s)
        if faults.drop_before is not None:
            return await _drop(request, faults.drop_before)
        if faults.errors_before:
            return kraken_response(errors=faults.errors_before)
        try:
            result, errors = api.call(method, key, params), None
        except KrakenError as exc:
            result, errors = None, exc.errors
        except Exception:  # noqa: BLE001 - Kraken answers its own failures in the envelope too
            log.exception("%s failed", method)
            result, errors = None, [INTERNAL_ERROR]
        if faults.latency_after_s:
            await asyncio.sleep(faults.latency_after_s)
        if faults.drop_after is not None:
            return await _drop(request, faults.drop_after)
        if faults.errors_after:
            errors = faults.errors_after
        return kraken_response(result, errors)

    return router


async def _drop(request: Request, spec: FaultSpec) -> Response:
    """Lose the answer to ``request`` the way ``spec`` says."""
    if spec.mode == "http":
        page = f"<html><body><h1>{spec.http_status}</h1><p>origin error (venue fault)</p></body></html>"
        return HTMLResponse(page, status_code=spec.http_status)
    if spec.mode == "hang" and spec.hold_s:
        await asyncio.sleep(spec.hold_s)
    # uvicorn's receive is a bound method of its per-request cycle, which holds the socket's
    # transport: aborting it resets the connection, which is how a lost response looks to a client.
    transport = getattr(getattr(request.receive, "__self__", None), "transport", None)
    if transport is None:
        raise DropResponse("response dropped by a venue fault (no socket to reset in this server)")
    transport.abort()
    await asyncio.sleep(0)  # let the server see the connection lost before anything is written
    return Response(status_code=204)
