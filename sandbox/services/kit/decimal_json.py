"""Exact decimals from JSON: :func:`loads`, and a route class whose JSON bodies are parsed with it.

FastAPI parses request bodies with ``json.loads``, turning ``0.123456789012345678``
into a float before pydantic sees it; decimal places and tick checks need the
exact token, and quantities and prices must stay exact. :func:`loads` parses JSON
numbers with a fraction or exponent as :class:`~decimal.Decimal` straight from
the raw token (integers stay int), and routes of :class:`DecimalRoute` hand
their endpoints bodies parsed that way.

:func:`loads` is the one parser for this in the services (request bodies, the
OMS's venue and platform answers, the executions feed): ``json.loads(...,
parse_float=Decimal)`` builds a new decoder per call and parses in Python-level
callbacks; ``msgspec``'s decoder gives the same values at about a third of the
CPU. Input it refuses (malformed JSON, but also what ``json.loads`` accepts and
it does not: ``NaN``/``Infinity``, lone surrogates, UTF-16/32 bytes) is parsed
again by ``json.loads``, so results and errors (:class:`json.JSONDecodeError`, a
:class:`ValueError`) are exactly ``json.loads``'s.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import msgspec
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_DECODE_ERROR = msgspec.DecodeError


def loads(data: bytes | str) -> Any:
    """``json.loads(data, parse_float=Decimal)``, faster (same values, same errors)."""
    try:
        return _DECODER.decode(data)
    except _DECODE_ERROR:
        return json.loads(data, parse_float=Decimal)


class DecimalJSONRequest(Request):
    """A request whose ``json()`` keeps decimal numbers exact."""

    async def json(self) -> Any:
        """The body parsed with :func:`loads` (cached like Starlette's)."""
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class DecimalRoute(APIRoute):
    """An ``APIRoute`` handing its endpoint a :class:`DecimalJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        """Wrap FastAPI's handler so the body is read through :class:`DecimalJSONRequest`."""
        handler = super().get_route_handler()

        async def decimal_handler(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return decimal_handler
