"""A strategy's available capital from capital-allocator, cached for a few seconds.

``GET {RISK_CAPITAL_ALLOCATOR_URL}/v1/strategies/{strategy}/capital`` with the
service account's token. The amount is read from the first of
:data:`AMOUNT_FIELDS` present in the answer (decimal string or number). Answers
are cached for ``ttl_s``; failures for ``error_ttl_s`` (an allocator outage then
costs one request per strategy per second, not one per check). Concurrent checks
of one strategy share one request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

from sandbox.services.risk.rules import Capital

log = logging.getLogger("sandbox.services.risk.capital")

#: Fields read for the available amount, in order of preference.
AMOUNT_FIELDS = ("available", "available_capital", "capital_available", "free_capital", "allocated", "capital")
UNAVAILABLE = "capital_unavailable"
NOT_ALLOCATED = "capital_not_allocated"
MAX_ENTRIES = 10_000


def parse_capital(doc: Any) -> Capital:
    """The :class:`Capital` in an allocator answer (``capital_unavailable`` when no amount is readable)."""
    if isinstance(doc, dict):
        for name in AMOUNT_FIELDS:
            raw = doc.get(name)
            if raw is None or isinstance(raw, bool):
                continue
            if isinstance(raw, dict):  # {"available": {"amount": "..", "currency": ".."}}
                currency = raw.get("currency")
                raw = raw.get("amount")
            else:
                currency = doc.get("currency")
            try:
                amount = Decimal(str(raw))
            except (InvalidOperation, ValueError):
                continue
            if amount.is_finite():
                return Capital(available=amount, currency=currency if isinstance(currency, str) else None)
    return Capital(problem=UNAVAILABLE, message="capital-allocator answered without an available amount")


class CapitalSource:
    """Fetches and caches available capital per strategy."""

    def __init__(self, client: Any, *, ttl_s: float, error_ttl_s: float, timeout_s: float, on_fetch: Any = None) -> None:
        """``client`` is a :class:`~sandbox.services.kit.auth.ServiceClient` on the allocator's base URL."""
        self.client = client
        self.ttl_s = ttl_s
        self.error_ttl_s = error_ttl_s
        self.timeout_s = timeout_s
        self._on_fetch = on_fetch or (lambda outcome: None)
        self._cache: OrderedDict[str, tuple[float, Capital]] = OrderedDict()
        self._inflight: dict[str, asyncio.Task[Capital]] = {}

    async def get(self, strategy: str) -> Capital:
        """The strategy's capital (cached), or why it is unknown."""
        hit = self._cache.get(strategy)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        task = self._inflight.get(strategy)
        if task is None:
            # A task of its own: a caller that disconnects must not cancel the lookup others wait for.
            task = asyncio.create_task(self._fetch_and_cache(strategy), name=f"capital-{strategy}")
            self._inflight[strategy] = task
            task.add_done_callback(lambda _t: self._inflight.pop(strategy, None))
        return await asyncio.shield(task)

    async def _fetch_and_cache(self, strategy: str) -> Capital:
        result = await self._fetch(strategy)
        ttl = self.ttl_s if result.problem != UNAVAILABLE else self.error_ttl_s
        self._cache[strategy] = (time.monotonic() + ttl, result)
        self._cache.move_to_end(strategy)
        while len(self._cache) > MAX_ENTRIES:
            self._cache.popitem(last=False)
        return result

    async def _fetch(self, strategy: str) -> Capital:
        path = f"/v1/strategies/{quote(strategy, safe='')}/capital"
        try:
            resp = await asyncio.wait_for(self.client.get(path), self.timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # unreachable, timeout, or no service token: the rule says so
            self._on_fetch("error")
            log.warning("capital-allocator unreachable", extra={"strategy": strategy, "error": f"{type(exc).__name__}: {exc}"})
            return Capital(problem=UNAVAILABLE, message=f"capital-allocator unreachable: {type(exc).__name__}")
        if resp.status_code == 404:
            self._on_fetch("not_allocated")
            return Capital(problem=NOT_ALLOCATED, message=f"capital-allocator has no allocation for strategy {strategy}")
        if resp.status_code != 200:
            self._on_fetch("error")
            log.warning("capital-allocator error", extra={"strategy": strategy, "status": resp.status_code})
            return Capital(problem=UNAVAILABLE, message=f"capital-allocator answered HTTP {resp.status_code}")
        try:
            doc = json.loads(resp.content, parse_float=Decimal)
        except ValueError:
            self._on_fetch("error")
            return Capital(problem=UNAVAILABLE, message="capital-allocator answered with invalid JSON")
        result = parse_capital(doc)
        self._on_fetch("ok" if result.problem is None else "error")
        return result

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
