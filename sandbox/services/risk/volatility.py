"""The 1-minute realised volatility of a symbol from the Feast feature server, cached for a few seconds.

``POST {RISK_FEATURE_SERVER_URL}/get-online-features`` with
``{"features": [RISK_VOLATILITY_FEATURE], "entities": {"symbol": [SYMBOL]}}``.
A value the server does not have (status other than ``PRESENT``) is
``feature_missing``; a server that cannot be asked is
``feature_server_unavailable``.  Either way the position limit is applied
unscaled and the check's answer says why (:func:`sandbox.services.risk.rules.scale_limit`).
Answers are cached for ``ttl_s``, failures for ``error_ttl_s``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.services.risk.rules import Volatility

log = logging.getLogger("sandbox.services.risk.volatility")

MISSING = "feature_missing"
UNAVAILABLE = "feature_server_unavailable"
MAX_ENTRIES = 10_000


def parse_online_features(doc: Any, feature: str) -> Volatility:
    """The volatility in a ``/get-online-features`` answer for one entity."""
    try:
        names = doc["metadata"]["feature_names"]
        result = doc["results"][names.index(feature.split(":")[-1])]
        status, value = result["statuses"][0], result["values"][0]
        as_of = (result.get("event_timestamps") or [None])[0]
    except (KeyError, IndexError, TypeError, ValueError):
        return Volatility(problem=UNAVAILABLE, message="the feature server's answer has no such feature")
    if status != "PRESENT" or value is None:
        return Volatility(problem=MISSING, message=f"feature {feature} is {str(status).lower()} for this symbol")
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Volatility(problem=MISSING, message=f"feature {feature} is not a number: {value!r}")
    if not amount.is_finite() or amount < 0:
        return Volatility(problem=MISSING, message=f"feature {feature} is not a volatility: {value!r}")
    return Volatility(value=amount, as_of=as_of if isinstance(as_of, str) else None)


class VolatilitySource:
    """Fetches and caches one volatility feature per symbol."""

    def __init__(
        self, client: Any, *, feature: str, ttl_s: float, error_ttl_s: float, timeout_s: float, on_fetch: Any = None
    ) -> None:
        """``client`` is an ``httpx.AsyncClient`` on the feature server's base URL."""
        self.client = client
        self.feature = feature
        self.ttl_s = ttl_s
        self.error_ttl_s = error_ttl_s
        self.timeout_s = timeout_s
        self._on_fetch = on_fetch or (lambda outcome: None)
        self._cache: OrderedDict[str, tuple[float, Volatility]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[Volatility]] = {}

    async def get(self, symbol: str) -> Volatility:
        """The symbol's volatility (cached), or why it is unknown."""
        hit = self._cache.get(symbol)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        task = self._inflight.get(symbol)
        if task is None:
            task = asyncio.create_task(self._fetch_and_cache(symbol), name=f"volatility-{symbol}")
            self._inflight[symbol] = task
            task.add_done_callback(lambda _t: self._inflight.pop(symbol, None))
        return await asyncio.shield(task)

    async def _fetch_and_cache(self, symbol: str) -> Volatility:
        result = await self._fetch(symbol)
        ttl = self.ttl_s if result.problem != UNAVAILABLE else self.error_ttl_s
        self._cache[symbol] = (time.monotonic() + ttl, result)
        self._cache.move_to_end(symbol)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
        return result

    async def _fetch(self, symbol: str) -> Volatility:
        body = {"features": [self.feature], "entities": {"symbol": [symbol]}}
        try:
            resp = await asyncio.wait_for(self.client.post("/get-online-features", json=body), self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unreachable or slow: the limit falls back to unscaled
            self._on_fetch("error")
            log.warning("feature server unreachable", extra={"symbol": symbol, "error": f"{type(exc).__name__}: {exc}"})
            return Volatility(problem=UNAVAILABLE, message=f"feature server unreachable: {type(exc).__name__}")
        if resp.status_code != 200:
            self._on_fetch("error")
            return Volatility(problem=UNAVAILABLE, message=f"feature server answered HTTP {resp.status_code}")
        try:
            doc = json.loads(resp.content)
        except ValueError:
            self._on_fetch("error")
            return Volatility(problem=UNAVAILABLE, message="feature server answered with invalid JSON")
        result = parse_online_features(doc, self.feature)
        self._on_fetch("ok" if result.problem is None else ("missing" if result.problem == MISSING else "error"))
        return result

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
