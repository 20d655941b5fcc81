"""Strategy capital at capital-allocator: reserve before an order goes out, release or consume after.

* ``reserve`` (``POST /v1/strategies/{s}/reservations``, idempotent on the order
  id) is on the order's path: a refusal (409 ``insufficient_capital`` /
  ``strategy_inactive``, 404) rejects the order with that code; an allocator
  that cannot be asked rejects it with ``capital_unavailable`` (fail closed).
* ``release`` (cancel, reject, expiry) and ``consume`` (fills: the cumulative
  notional, ``final`` once the order is done) are idempotent at the allocator,
  so they run in the background and are retried until they succeed.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import ROUND_UP, Decimal
from typing import Any

from sandbox.services.oms.checks import reason
from sandbox.services.oms.upstream import UpstreamError, Upstreams

log = logging.getLogger("sandbox.services.oms.capital")

EIGHT_PLACES = Decimal("0.00000001")
RETRY_DELAYS_S = (0.2, 0.5, 1, 2, 5, 10, 30)


def reservation_amount(notional: Decimal, estimated_fee: Decimal | None) -> Decimal:
    """What to reserve: the notional plus the estimated fee, rounded up to 8 decimal places."""
    total = notional + (estimated_fee or Decimal(0))
    return total.quantize(EIGHT_PLACES, rounding=ROUND_UP)


class CapitalClient:
    """The allocator calls of the OMS (background ones tracked so shutdown can wait for them)."""

    def __init__(self, up: Upstreams) -> None:
        """``up`` must have the ``capital`` service configured for :attr:`enabled` to be True."""
        self.up = up
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def enabled(self) -> bool:
        """Whether capital-allocator is configured."""
        return self.up.configured("capital")

    async def reserve(self, strategy: str, order_id: str, amount: Decimal, account: str) -> dict[str, Any] | None:
        """Reserve ``amount`` for the order; None when done, else the rejection reason."""
        try:
            reply = await self.up.call("capital", "POST", f"/v1/strategies/{strategy}/reservations",
                                       {"order_id": order_id, "amount": amount, "account": account})
        except UpstreamError as exc:
            return reason("capital_unavailable", f"capital-allocator could not be asked: {exc}", "capital")
        if reply.status in (200, 201):
            return None
        body = reply.body if isinstance(reply.body, dict) else {}
        if reply.status == 404:
            return reason("capital_not_allocated", str(body.get("message") or f"strategy {strategy} has no allocation"),
                          "capital")
        code = str(body.get("error") or f"capital_http_{reply.status}")
        return reason(code, str(body.get("message") or f"capital-allocator answered HTTP {reply.status}"), "capital",
                      body.get("detail"))

    def release(self, strategy: str, order_id: str) -> None:
        """Release what remains reserved for the order (background, retried)."""
        self._spawn(f"/v1/strategies/{strategy}/reservations/{order_id}/release", None)

    def consume(self, strategy: str, order_id: str, consumed_total: Decimal, final: bool) -> None:
        """Record the order's cumulative filled notional (background, retried)."""
        body = {"consumed_total": consumed_total.quantize(EIGHT_PLACES, rounding=ROUND_UP), "final": final}
        self._spawn(f"/v1/strategies/{strategy}/reservations/{order_id}/consume", body)

    def _spawn(self, path: str, body: Any) -> None:
        if not self.enabled:
            return
        task = asyncio.get_running_loop().create_task(self._retry(path, body))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _retry(self, path: str, body: Any) -> None:
        for delay in (0, *RETRY_DELAYS_S):
            if delay:
                await asyncio.sleep(delay)
            try:
                reply = await self.up.call("capital", "POST", path, body)
            except UpstreamError as exc:
                log.warning("capital call failed, will retry", extra={"path": path, "error": str(exc)})
                continue
            if reply.status < 300 or reply.status == 404:
                return  # done, or nothing to release (no reservation was made)
            if 400 <= reply.status < 500 and reply.status not in (408, 409, 429):
                log.warning("capital call refused", extra={"path": path, "status": reply.status})
                return
        log.error("capital call abandoned after retries", extra={"path": path})

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for background calls, then cancel what is left."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout)
            for task in pending:
                task.cancel()
