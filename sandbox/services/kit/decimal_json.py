"""A route class whose JSON bodies are parsed with ``parse_float=Decimal``.

FastAPI parses request bodies with ``json.loads``, turning ``0.123456789012345678``
into a float before pydantic sees it; decimal places and tick checks need the
exact token, and quantities and prices must stay exact. Routes of this class
parse JSON numbers with a fraction or exponent as :class:`~decimal.Decimal`
straight from the raw token (integers stay int).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response


class DecimalJSONRequest(Request):
    """A request whose ``json()`` keeps decimal numbers exact."""

    async def json(self) -> Any:
        """The body parsed with ``parse_float=Decimal`` (cached like Starlette's)."""
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), parse_float=Decimal)
        return self._json


class DecimalRoute(APIRoute):
    """An ``APIRoute`` handing its endpoint a :class:`DecimalJSONRequest`."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        """Wrap FastAPI's handler so the body is read through :class:`DecimalJSONRequest`."""
        handler = super().get_route_handler()

        async def decimal_handler(request: Request) -> Response:
            return await handler(DecimalJSONRequest(request.scope, request.receive))

        return decimal_handler
