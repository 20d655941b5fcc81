"""Placing and cancelling orders: the path of ``POST /v1/orders`` and the cancel endpoints.

Placing an order:

1. the client order id is claimed in Redis (a duplicate gets the original order);
2. the account's kill switch is checked (in memory);
3. policy, risk and fees are asked concurrently (:mod:`.checks`);
4. a strategy's capital is reserved at capital-allocator (:mod:`.capital`);
5. the order is written (``pending_new``, or ``rejected`` with the reasons);
6. ``AddOrder`` goes to the venue with ``cl_ord_id`` = the order id, the caller's
   ``userref`` and a ``deadline``; the answer moves it to ``new`` (txid) or
   ``rejected``. When the answer is lost the order stays ``pending_new`` and is
   resolved after the deadline by looking it up by ``cl_ord_id``; ``AddOrder``
   is never sent twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from sandbox.services.kit.auth import Principal
from sandbox.services.kit.errors import ServiceError
from sandbox.services.oms import states, store
from sandbox.services.oms.capital import CapitalClient, reservation_amount
from sandbox.services.oms.checks import CheckResult, reason, run_checks
from sandbox.services.oms.idempotency import IdempotencyKeys
from sandbox.services.oms.instruments import InstrumentCatalog
from sandbox.services.oms.kraken_client import KrakenApiError, KrakenClient, KrakenError, KrakenUnknownOutcome
from sandbox.services.oms.models import OrderCreate
from sandbox.services.oms.store import OrderRecord
from sandbox.services.oms.tracker import OrderTracker
from sandbox.services.oms.upstream import Upstreams
from sandbox.services.oms.venue_reports import venue_order

log = logging.getLogger("sandbox.services.oms.orders")

#: How often a duplicate polls for the original order written by another replica.
DUPLICATE_POLL_S = 0.02
CANCEL_CONCURRENCY = 8


@dataclass
class Placed:
    """The order a placement answers with, and whether this request created it."""

    order: OrderRecord
    created: bool


class OrderService:
    """The order API's operations."""

    def __init__(self, *, pool: Any, keys: IdempotencyKeys, catalog: Callable[[], InstrumentCatalog],
                 kraken: Callable[[], KrakenClient | None], upstreams: Upstreams, capital: CapitalClient,
                 tracker: OrderTracker, kill_switch: Callable[[str], dict[str, Any] | None],
                 venue_timeout_s: float, check_timeout_s: float, grace_s: float, counters: Any = None,
                 order_tag: str | None = None) -> None:
        """Wire the collaborators; nothing runs until called. ``order_tag`` ends every order id (:mod:`.ownership`)."""
        self.pool = pool
        self.order_tag = order_tag
        self.keys = keys
        self.catalog = catalog
        self.kraken = kraken
        self.upstreams = upstreams
        self.capital = capital
        self.tracker = tracker
        self.kill_switch = kill_switch
        self.venue_timeout_s = venue_timeout_s
        self.claim_grace_s = 2 * check_timeout_s + 3.0
        self.grace_s = grace_s
        self.counters = counters or {}
        self._written: dict[str, asyncio.Future[OrderRecord | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- placing -------------------------------------------------------------------------------

    async def place(self, body: OrderCreate, who: Principal) -> Placed:
        """Place an order (or return the original for a repeated client order id)."""
        catalog = self.catalog()
        if not len(catalog):
            raise ServiceError(503, "instruments_unavailable", "the venue's instruments are not loaded yet",
                               headers={"Retry-After": "1"})
        order_id = store.new_order_id(self.order_tag)
        try:
            holder = await self.keys.claim(body.account, body.client_order_id, order_id)
        except RedisError as exc:
            raise ServiceError(503, "idempotency_store_unavailable", f"cannot claim the client order id: {exc}",
                               headers={"Retry-After": "1"}) from None
        if holder is not None:
            try:
                original = await self._original(body, holder, order_id)
            except RedisError as exc:
                raise ServiceError(503, "idempotency_store_unavailable", f"cannot check the client order id: {exc}",
                                   headers={"Retry-After": "1"}) from None
            if original is not None:
                self._count("placed", "duplicate")
                return Placed(original, False)
        loop = asyncio.get_running_loop()
        self._written[order_id] = loop.create_future()
        try:
            return await self._place(body, who, order_id, catalog)
        except BaseException:
            written = self._written.get(order_id)
            self._settle_written(order_id, None)
            if written is not None:  # failed before the order was written: the client may retry the id
                with contextlib.suppress(RedisError):
                    await self.keys.give_back(body.account, body.client_order_id, order_id)
            raise

    async def _original(self, body: OrderCreate, holder: str, order_id: str) -> OrderRecord | None:
        """The order holding the client order id (waiting while it is being written); None when we took over."""
        pending = self._written.get(holder)
        if pending is not None:
            found = await asyncio.shield(pending)
            if found is not None:
                return found
        deadline = time.monotonic() + self.claim_grace_s
        while True:
            found = await store.get_order(self.pool, holder)
            if found is None:
                found = await store.get_by_client_id(self.pool, body.account, body.client_order_id)
            if found is not None:
                return found
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(DUPLICATE_POLL_S)
        # The claimer never wrote its order (it failed or died): take the id over.
        if await self.keys.take_over(body.account, body.client_order_id, holder, order_id):
            log.warning("stale client order id claim taken over",
                        extra={"account": body.account, "client_order_id": body.client_order_id})
            return None
        raise ServiceError(409, "duplicate_in_flight", "an order with this client_order_id is being placed; retry",
                           headers={"Retry-After": "1"})

    def _settle_written(self, order_id: str, order: OrderRecord | None) -> None:
        """Wake duplicates waiting for ``order_id`` (it was written, or ``None``: it never will be)."""
        fut = self._written.pop(order_id, None)
        if fut is not None and not fut.done():
            fut.set_result(order)

    async def _place(self, body: OrderCreate, who: Principal, order_id: str, catalog: InstrumentCatalog) -> Placed:
        inst = catalog.find(body.symbol)
        rec = OrderRecord(
            id=order_id, account=body.account, strategy=body.strategy, client_order_id=body.client_order_id,
            symbol=inst.symbol if inst else body.symbol.upper(), pair=inst.key if inst else body.symbol.upper(),
            side=body.side, type=body.type, qty=body.qty, price=body.price, post_only=body.post_only,
            userref=body.userref, reference_price=body.reference_price, created_by=who.subject,
        )
        reasons: list[dict[str, Any]] = []
        checks = CheckResult()
        switch = self.kill_switch(body.account)
        if inst is None:
            reasons.append(reason("instrument_unknown", f"the venue lists no instrument {body.symbol!r}", "oms"))
        elif switch is not None:
            reasons.append(reason("kill_switch_active", f"the account's kill switch is active: {switch.get('reason')}",
                                  "oms", {"at": switch.get("at")}))
        else:
            checks = await run_checks(self.upstreams, body, inst)
            reasons.extend(checks.reasons)
            rec.estimated_fee = checks.estimated_fee
        if not reasons and body.strategy and self.capital.enabled:
            if checks.notional is None:
                reasons.append(reason("price_unavailable", "a strategy order needs a price or reference_price to "
                                      "reserve capital", "oms"))
            else:
                amount = reservation_amount(checks.notional, checks.estimated_fee)
                refusal = await self.capital.reserve(body.strategy, order_id, amount, body.account)
                if refusal is None:
                    rec.capital_reserved, rec.capital_state = amount, "reserved"
                else:
                    reasons.append(refusal)
        received = (None, states.PENDING_NEW, "received", {"by": who.subject, "skipped_checks": checks.skipped or None})
        if reasons:
            rec.state, rec.reasons = states.REJECTED, reasons
            steps = [received, (states.PENDING_NEW, states.REJECTED, "checks_failed",
                                {"codes": [r["code"] for r in reasons]})]
        else:
            steps = [received]
        try:
            inserted = await store.insert_order(self.pool, rec, steps)
        except BaseException:
            if rec.capital_state == "reserved":
                self.capital.release(body.strategy or "", order_id)
            raise
        if inserted is None:
            # The database already has this client order id (the Redis key was lost): answer with it.
            existing = await store.get_by_client_id(self.pool, body.account, body.client_order_id)
            if rec.capital_state == "reserved":
                self.capital.release(body.strategy or "", order_id)
            self._settle_written(order_id, existing)
            if existing is None:
                raise ServiceError(409, "conflict", "the order could not be written; retry")
            return Placed(existing, False)
        order, transitions = inserted
        self._settle_written(order_id, order)
        self.tracker.recent.put(order)
        self.tracker.events.order(order, transitions)
        if order.state == states.REJECTED:
            self._count("placed", "rejected")
            for r in reasons:
                self._count("rejections", r["code"])
            return Placed(order, True)
        order = await self._submit(order)
        self._count("placed", order.state)
        return Placed(order, True)

    async def _submit(self, order: OrderRecord) -> OrderRecord:
        """Send ``AddOrder`` and apply the answer."""
        client = self.kraken()
        if client is None:
            return await self.tracker.move(order, states.REJECTED, "venue_unavailable", add_reasons=[
                reason("venue_credentials_unavailable", "the OMS has no venue API key pair", "oms")])
        # While the order is in ``submitting`` the executions feed leaves its acknowledgement to this path.
        self.tracker.submitting[order.id] = None
        try:
            return await self._send(client, order)
        finally:
            self.tracker.submitting.pop(order.id, None)

    async def _send(self, client: KrakenClient, order: OrderRecord) -> OrderRecord:
        try:
            result = await client.add_order(
                pair=order.pair, side=order.side, ordertype=order.type, volume=order.qty, price=order.price,
                post_only=order.post_only, userref=order.userref, cl_ord_id=order.id,
                deadline_s=self.venue_timeout_s,
            )
        except KrakenUnknownOutcome as exc:
            seen = self.tracker.submitting.get(order.id)
            if seen:  # the executions feed saw the venue accept it: only the answer was lost
                return await self.tracker.move(self._latest(order), states.NEW, "venue_acknowledged", txid=seen,
                                               detail={"source": "ws", "add_order": str(exc)})
            log.warning("AddOrder outcome unknown; resolving by client order id",
                        extra={"order_id": order.id, "error": str(exc)})
            self._count("unknown_outcomes", "add_order")
            # The request was signed at most venue_timeout_s ago: its deadline is past after this delay.
            self.schedule_resolve(order.id, max(self.grace_s, self.venue_timeout_s + 1.0))
            return self._latest(order)
        except KrakenApiError as exc:
            return await self.tracker.move(order, states.REJECTED, "venue_rejected", detail={"errors": exc.errors},
                                           add_reasons=[venue_reason(exc.errors)])
        except KrakenError as exc:  # transport failure before the request was written: nothing reached the venue
            return await self.tracker.move(order, states.REJECTED, "venue_unreachable", detail={"error": str(exc)},
                                           add_reasons=[reason("venue_unreachable", str(exc), "venue")])
        txid = result.txids[0] if result.txids else None
        # Fills may have been recorded meanwhile (a marketable order): start from the latest known state.
        return await self.tracker.move(self._latest(order), states.NEW, "venue_acknowledged", txid=txid,
                                       detail={"description": result.description})

    def _latest(self, order: OrderRecord) -> OrderRecord:
        """The most recent version of ``order`` this process knows."""
        return self.tracker.recent.get(order.id) or order

    def schedule_resolve(self, order_id: str, delay_s: float) -> None:
        """Look up an order whose ``AddOrder`` answer was lost, after ``delay_s``."""
        task = asyncio.get_running_loop().create_task(self._resolve_later(order_id, delay_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resolve_later(self, order_id: str, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        for attempt in range(5):
            order = await store.get_order(self.pool, order_id)
            if order is None or order.state != states.PENDING_NEW or order.txid:
                return
            try:
                await self.resolve(order)
                return
            except KrakenError as exc:
                log.warning("resolving an order failed", extra={"order_id": order_id, "error": str(exc)})
                await asyncio.sleep(min(30.0, 2.0 * (attempt + 1)))

    async def resolve(self, order: OrderRecord) -> OrderRecord:
        """Find out whether the venue has an unacknowledged order (by ``cl_ord_id``) and apply the answer.

        Not found (after the ``AddOrder`` deadline) means the venue never took it: ``rejected``.
        """
        client = self.kraken()
        if client is None:
            return order
        found = await client.open_orders(trades=True, cl_ord_id=order.id)
        if not found:
            start = order.created_at.timestamp() - 60 if order.created_at else None
            found, _ = await client.closed_orders(trades=True, cl_ord_id=order.id, start=start)
        for txid, info in found.items():
            order, _ = await self.tracker.sync(order, venue_order(txid, info), source="resolve")
            return order
        return await self.tracker.move(order, states.REJECTED, "venue_not_received", add_reasons=[
            reason("venue_not_received", "the venue has no order with this client order id after the deadline",
                   "venue")])

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, order_id: str, who: Principal) -> OrderRecord:
        """Cancel one order (404 unknown, 409 already ended, 503 venue unreachable)."""
        order = await store.get_order(self.pool, order_id)
        if order is None:
            raise ServiceError(404, "order_not_found", f"no order {order_id}")
        if states.is_terminal(order.state):
            raise ServiceError(409, "order_not_open", f"the order is {order.state}", detail={"state": order.state})
        try:
            return await self.tracker.cancel_at_venue(order, f"canceled by {who.subject}")
        except KrakenError as exc:
            raise ServiceError(503, "venue_unavailable", f"the venue could not cancel the order: {exc}",
                               headers={"Retry-After": "1"}) from None

    async def cancel_many(self, orders: list[OrderRecord], why: str, scope: str) -> dict[str, Any]:
        """Cancel ``orders`` (a few at a time); what happened to each."""
        canceled, pending, done, failed = [], [], [], []
        sem = asyncio.Semaphore(CANCEL_CONCURRENCY)

        async def one(order: OrderRecord) -> None:
            async with sem:
                try:
                    after = await self.tracker.cancel_at_venue(order, why)
                except KrakenError as exc:
                    failed.append({"order_id": order.id, "error": str(exc)})
                    return
                if after.state == states.CANCELED:
                    canceled.append(order.id)
                elif states.is_terminal(after.state):
                    done.append(order.id)
                else:
                    pending.append(order.id)  # not acknowledged yet: cancelled when it is

        await asyncio.gather(*(one(o) for o in orders))
        return {"scope": scope, "requested": len(orders), "canceled": canceled, "pending": pending,
                "already_done": done, "failed": failed}

    def _count(self, name: str, label: str) -> None:
        counter = self.counters.get(name)
        if counter is not None:
            counter.labels(label).inc()

    async def drain(self, timeout: float = 5.0) -> None:
        """Cancel pending resolutions at shutdown (the poll and reconciliation pick them up again)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)


def venue_reason(errors: list[str]) -> dict[str, Any]:
    """The rejection reason for Kraken errors (``venue_rejected``, the errors in the message)."""
    return reason("venue_rejected", "; ".join(errors), "venue", {"errors": errors})
