"""Execution reports: the venue's private WebSocket ``executions`` feed, and polling as the fallback.

The feed (Kraken WebSocket v2: token from ``GetWebSocketsToken``, subscribe to
``executions``) delivers ``new``, ``trade``, ``filled``, ``canceled`` and
``expired`` events as they happen. Events of one order are applied in order
(a chain per order), different orders concurrently. After every (re)connect
the open orders are synced over REST, which covers what happened while the
feed was down.

Every replica receives every event. Events of orders another replica placed
(the order id's tag, :mod:`.ownership`) are held for ``foreign_grace_s``; then
one query tells which of them that replica has applied, and the rest are
applied here like this replica's own.

The poll syncs the OMS's open orders with ``QueryOrders`` every
``OMS_POLL_INTERVAL_S`` while the feed is down and five times less often
while it is up (a safety net), and looks up orders whose ``AddOrder`` answer
was lost once their deadline has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from decimal import Decimal
from typing import Any

from sandbox.ingest import wsclient
from sandbox.services.kit import decimal_json
from sandbox.services.oms import states, store
from sandbox.services.oms.kraken_client import KrakenError
from sandbox.services.oms.ownership import applied_by_owner, owner_tag
from sandbox.services.oms.store import OrderRecord
from sandbox.services.oms.tracker import OrderTracker
from sandbox.services.oms.venue_reports import ReportError, venue_order, ws_fill

log = logging.getLogger("sandbox.services.oms.executions")

RECONNECT_MAX_S = 5.0
#: The venue sends a heartbeat every second while subscribed: this long without any message, the feed is dead
#: (a half-open connection) and is reopened.
SILENCE_S = 20.0
MAX_MESSAGE = 2**22
UP_POLL_FACTOR = 5
#: pending_new orders without a txid older than this are looked up by client order id
UNACKED_AGE_S = 10.0
KINDS = frozenset({"pending_new", "new", "trade", "filled", "canceled", "expired", "amended", "restated", "status"})
#: How long events of orders another replica placed are held before checking that replica applied them.
FOREIGN_GRACE_S = 3.0
#: How often held events are checked.
HELD_CHECK_S = 0.5
#: Most events held at once (beyond: the oldest are dropped and counted; the open-order poll repairs).
#: A held event is about 2 KB: 20,000 is a few seconds of a busy account's events, about 40 MB.
MAX_HELD = 20_000
#: Most held events settled by one query.
RELEASE_BATCH = 1_000


class ExecutionFeed:
    """The executions WebSocket client and the REST poll."""

    def __init__(self, tracker: OrderTracker, *, ws_url: str, poll_interval_s: float, resolve: Any,
                 counter: Any = None, own_tag: str | None = None, foreign_grace_s: float = FOREIGN_GRACE_S) -> None:
        """``resolve(order)`` looks up an unacknowledged order (``OrderService.resolve``); ``counter(kind, outcome)``.

        ``own_tag``: this replica's order-id tag; events of orders tagged otherwise are held ``foreign_grace_s``
        (``None``: every event is applied at once).
        """
        self.tracker = tracker
        self.own_tag = own_tag
        self.foreign_grace_s = foreign_grace_s
        #: (arrival time, event) of other replicas' orders, oldest first
        self._held: deque[tuple[float, dict[str, Any]]] = deque()
        #: order id -> its events in ``_held`` (while any is, later ones are held too: one order's events stay in order)
        self._held_orders: dict[str, int] = {}
        self.ws_url = ws_url
        self.poll_interval_s = poll_interval_s
        self.resolve = resolve
        self.counter = counter
        self.connected = False
        self.last_message_at: float | None = None
        self.events = 0
        self.connects = 0
        self.last_error: str | None = None
        self._chains: dict[str, asyncio.Task[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._sync_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._opens = 0  # connections opened (subscribe sent)

    def start(self) -> None:
        """Run the feed and the poll in the background."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._feed_loop(), name="oms-executions-feed"),
                       loop.create_task(self._poll_loop(), name="oms-executions-poll"),
                       loop.create_task(self._held_loop(), name="oms-executions-held")]

    async def stop(self) -> None:
        """Stop the feed, the poll and the held events' check, and wait for event chains (bounded)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        chains = [t for t in self._chains.values() if not t.done()]
        if chains:
            await asyncio.wait(chains, timeout=5)

    # -- the WebSocket feed -----------------------------------------------------------------------

    async def _feed_loop(self) -> None:
        delay = 0.2
        while True:
            client = self.tracker.kraken()
            opens = self._opens
            try:
                if client is None:
                    raise RuntimeError("no venue API key pair")
                token = await client.websockets_token()
                await self._follow(token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - reconnect with backoff; the poll covers the gap
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.info("executions feed down", extra={"error": self.last_error})
            if self.connected:
                log.warning("executions feed disconnected")
            self.connected = False
            self._wake.set()
            if self._opens != opens:  # it was up: start the back-off again
                delay = 0.2
            await asyncio.sleep(delay)
            delay = min(RECONNECT_MAX_S, delay * 2)

    async def _follow(self, token: str) -> None:
        """One connection: subscribe, hand every message to :meth:`_on_message` as it is parsed, return when
        the venue closes it normally; raise when it breaks or stays silent for ``SILENCE_S``.

        picows parses frames in compiled code and calls back from the socket's ``data_received`` (no task,
        future or queue per message: the ``websockets`` client cost about 6% of the OMS's CPU per order).
        No permessage-deflate either: the feed's events are small and the link is local or in-cluster.
        """
        ws = await wsclient.connect(self.ws_url, lambda raw, _ns: self._on_message(raw), open_timeout=5,
                                    max_size=MAX_MESSAGE)
        opened = time.monotonic()
        closed = asyncio.ensure_future(ws.wait_closed())
        try:
            ws.send_now(json.dumps({"method": "subscribe", "req_id": 1, "params": {
                "channel": "executions", "token": token, "snap_orders": True, "snap_trades": False,
                # no pending_new events: the OMS writes that state itself before sending
                "order_status": False}}))
            self._opens += 1
            while not (await asyncio.wait({closed}, timeout=SILENCE_S / 4))[0]:
                if time.monotonic() - max(opened, self.last_message_at or opened) > SILENCE_S:
                    raise TimeoutError(f"no message (not even a heartbeat) for {SILENCE_S:g} s")
            closed.result()  # what a frame callback raised, if anything
            code = ws.listener.close_code
            if code != 1000:
                raise ConnectionError(f"the venue closed the feed (code {code})" if code else "the feed broke")
        finally:
            closed.cancel()
            with contextlib.suppress(Exception):
                await ws.close(timeout=2)

    def _on_message(self, raw: str | bytes) -> None:
        self.last_message_at = time.monotonic()
        try:
            doc = decimal_json.loads(raw)
        except ValueError:
            log.warning("unreadable executions message")
            return
        if not isinstance(doc, dict):
            return
        if doc.get("method") == "subscribe":
            if doc.get("success") is True:
                self.connected = True
                self.connects += 1
                log.info("executions feed subscribed")
                self._wake.set()  # sync open orders now: events may have been missed
            else:
                self.last_error = str(doc.get("error"))
                log.warning("executions subscription refused", extra={"error": self.last_error})
            return
        if doc.get("channel") != "executions" or doc.get("type") != "update":
            return  # status, heartbeat, pong; the snapshot is covered by the sync after subscribing
        for item in doc.get("data") or []:
            if isinstance(item, dict):
                self._enqueue(item)

    def _enqueue(self, item: dict[str, Any]) -> None:
        """Apply ``item`` after the previous events of the same order (unless it can change nothing); hold it
        when another replica placed the order."""
        if self._skip(item):
            self.events += 1
            return
        if self._foreign(item):
            self._hold(item)
            return
        self._chain(item)

    def _hold(self, item: dict[str, Any]) -> None:
        if len(self._held) >= MAX_HELD:
            _, dropped = self._held.popleft()
            self._unhold(dropped)
            self._count(dropped.get("exec_type"), "dropped")
        self._held.append((time.monotonic(), item))
        key = item["cl_ord_id"]
        self._held_orders[key] = self._held_orders.get(key, 0) + 1

    def _unhold(self, item: dict[str, Any]) -> None:
        key = item["cl_ord_id"]
        left = self._held_orders.get(key, 0) - 1
        if left > 0:
            self._held_orders[key] = left
        else:
            self._held_orders.pop(key, None)

    def _chain(self, item: dict[str, Any]) -> None:
        """Apply ``item`` after the previous events of the same order."""
        key = str(item.get("cl_ord_id") or item.get("order_id") or "")
        previous = self._chains.get(key)
        task = asyncio.get_running_loop().create_task(self._apply_after(previous, item))
        self._chains[key] = task
        task.add_done_callback(lambda t, k=key: self._chains.pop(k, None) if self._chains.get(k) is t else None)

    async def _apply_after(self, previous: asyncio.Task[None] | None, item: dict[str, Any]) -> None:
        if previous is not None:
            with contextlib.suppress(Exception):
                await previous
        try:
            await self.apply_event(item)
        except Exception:  # noqa: BLE001 - one bad event must not stop the feed; the poll repairs
            log.exception("executions event failed", extra={"exec_type": item.get("exec_type"),
                                                            "order_id": item.get("order_id")})

    async def apply_event(self, item: dict[str, Any]) -> None:
        """Apply one ``executions`` update item."""
        self.events += 1
        if self._skip(item):
            return
        kind = item.get("exec_type")
        txid = str(item["order_id"]) if item.get("order_id") else None
        cl_ord_id = str(item["cl_ord_id"]) if item.get("cl_ord_id") else None
        cached = self.tracker.recent.get(cl_ord_id)
        self._count(kind, "applied")
        order = cached or await store.find_venue_order(self.tracker.pool, txid, cl_ord_id)
        if order is None:
            if txid and kind in ("new", "trade", "filled", "canceled", "expired"):
                await self._adopt(txid)
            return
        if kind == "pending_new":
            if txid and not order.txid:
                await store.set_txid(self.tracker.pool, order.id, txid)
        elif kind == "new":
            await self.tracker.move(order, states.NEW, "venue_acknowledged", txid=txid, detail={"source": "ws"})
        elif kind == "trade":
            inst = self.tracker.instrument(order)
            if inst is None:
                return
            try:
                fill = ws_fill(item, order, inst)
            except ReportError as exc:
                log.warning("unreadable trade event", extra={"order_id": order.id, "error": str(exc)})
                return
            await self.tracker.record_fill(fill, inst, venue_state=str(item.get("order_status") or ""), txid=txid)
        elif kind in ("canceled", "expired"):
            target = states.CANCELED if kind == "canceled" else states.EXPIRED
            if await self._catch_up_fills(order, item):
                order = await store.get_order(self.tracker.pool, order.id) or order
            await self.tracker.move(order, target, f"venue_{kind}", txid=txid,
                                    detail={"source": "ws", "venue_reason": item.get("cancel_reason")})
        elif kind == "filled":
            await self._catch_up_fills(order, item)

    def _skip(self, item: dict[str, Any]) -> bool:
        """Whether ``item`` can change nothing this process does not already know (decided without I/O).

        Every condition, once true, stays true, so deciding it before earlier
        events of the order are applied is safe.
        """
        kind = item.get("exec_type")
        cl_ord_id = str(item["cl_ord_id"]) if item.get("cl_ord_id") else None
        if cl_ord_id in self.tracker.submitting and kind in ("pending_new", "new"):
            # This process is placing the order: the AddOrder answer records the acknowledgement.
            if item.get("order_id"):
                self.tracker.submitting[cl_ord_id] = str(item["order_id"])
            self._count(kind, "skipped")
            return True
        cached = self.tracker.recent.get(cl_ord_id)
        if cached is not None and self._nothing_new(cached, kind, item):
            self._count(kind, "skipped")
            return True
        return False

    def _foreign(self, item: dict[str, Any]) -> bool:
        """Whether ``item`` is to be held: its order carries another replica's tag and this replica has not
        written it lately, or earlier events of the order are held."""
        if self.own_tag is None:
            return False
        cl_ord_id = item.get("cl_ord_id")
        if type(cl_ord_id) is not str or cl_ord_id.endswith(self.own_tag):
            return False  # most events: this replica's own orders, told without parsing the id
        if cl_ord_id in self._held_orders:
            return True
        return owner_tag(cl_ord_id) is not None and self.tracker.recent.get(cl_ord_id) is None

    async def _held_loop(self) -> None:
        while True:
            await asyncio.sleep(HELD_CHECK_S)
            try:
                await self.release_held()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - kept for the next round
                log.info("held executions events not checked", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def release_held(self, now: float | None = None) -> int:
        """Settle the held events older than the grace period: those the placing replica applied are done,
        the rest are applied here. Returns how many were settled; on a database error they stay held."""
        cutoff = (time.monotonic() if now is None else now) - self.foreign_grace_s
        settled = 0
        while self._held and self._held[0][0] <= cutoff:
            due: list[tuple[float, dict[str, Any]]] = []
            while self._held and self._held[0][0] <= cutoff and len(due) < RELEASE_BATCH:
                due.append(self._held.popleft())
            try:
                progress = await store.order_progress(self.tracker.pool, list({i["cl_ord_id"] for _, i in due}))
            except BaseException:
                self._held.extendleft(reversed(due))
                raise
            for _, item in due:
                self._unhold(item)
                kind = item.get("exec_type")
                known = progress.get(item["cl_ord_id"])
                if known is not None and applied_by_owner(kind, item, *known):
                    self.events += 1
                    self._count(kind, "owner")
                else:
                    self._chain(item)
            settled += len(due)
        return settled

    @property
    def held(self) -> int:
        """Events of other replicas' orders waiting for their grace period."""
        return len(self._held)

    def _count(self, kind: Any, outcome: str) -> None:
        if self.counter is not None:
            self.counter.labels(str(kind) if kind in KINDS else "other", outcome).inc()

    @staticmethod
    def _nothing_new(cached: OrderRecord, kind: Any, item: dict[str, Any]) -> bool:
        """Whether an event about an order this process wrote cannot change it (no database read needed).

        ``pending_new``: this process is placing it and records the txid from the
        AddOrder answer; ``new``: already acknowledged; ``filled``: the fills it
        totals are recorded. A cached order is never ahead of the database.
        """
        if kind == "pending_new":
            return True
        if kind == "new":
            return cached.state != states.PENDING_NEW
        if kind == "filled":
            try:
                return cached.filled_qty >= Decimal(str(item.get("cum_qty", "0")))
            except ArithmeticError:
                return False
        return False

    async def _catch_up_fills(self, order: OrderRecord, item: dict[str, Any]) -> bool:
        """A final event reports more executed than the OMS recorded: fetch the missing fills over REST.

        Returns True when it had to (the caller then re-reads the order).
        """
        try:
            cum = Decimal(str(item.get("cum_qty", "0")))
        except ArithmeticError:
            return False
        if cum <= order.filled_qty:
            return False
        fresh = await store.get_order(self.tracker.pool, order.id) or order  # the cache may be behind
        txid = fresh.txid or (str(item["order_id"]) if item.get("order_id") else None)
        client = self.tracker.kraken()
        if cum <= fresh.filled_qty or not txid or client is None:
            return True
        infos = await client.query_orders([txid], trades=True)
        if txid in infos:
            await self.tracker.sync(fresh, venue_order(txid, infos[txid]), source="ws")
        return True

    async def _adopt(self, txid: str) -> None:
        client = self.tracker.kraken()
        if client is None:
            return
        infos = await client.query_orders([txid], trades=True)
        if txid in infos:
            await self.tracker.adopt(venue_order(txid, infos[txid]), source="ws")

    # -- the poll ----------------------------------------------------------------------------------

    async def _poll_loop(self) -> None:
        while True:
            interval = self.poll_interval_s * (UP_POLL_FACTOR if self.connected else 1)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)
            self._wake.clear()
            try:
                await self.sync_open_orders()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - next round
                log.info("open-order sync failed", extra={"error": f"{type(exc).__name__}: {exc}"})

    async def sync_open_orders(self) -> dict[str, int]:
        """Sync every open OMS order with the venue's ``QueryOrders``; returns counts."""
        client = self.tracker.kraken()
        if client is None:
            return {}
        async with self._sync_lock:
            orders = await store.open_orders(self.tracker.pool)
            with_txid = [o for o in orders if o.txid]
            counts = {"orders": len(orders), "changed": 0, "resolved": 0}
            if with_txid:
                infos = await client.query_orders([o.txid for o in with_txid if o.txid], trades=True)
                for order in with_txid:
                    info = infos.get(order.txid or "")
                    if info is None:
                        continue
                    _, changes = await self.tracker.sync(order, venue_order(order.txid or "", info), source="poll")
                    counts["changed"] += bool(changes)
            now = time.time()
            for order in orders:
                if order.txid or order.created_at is None or now - order.created_at.timestamp() < UNACKED_AGE_S:
                    continue
                try:
                    await self.resolve(order)
                    counts["resolved"] += 1
                except KrakenError as exc:
                    log.info("unacknowledged order lookup failed", extra={"order_id": order.id, "error": str(exc)})
            return counts
