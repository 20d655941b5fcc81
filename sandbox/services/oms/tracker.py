"""Applying what the venue says to the OMS's orders: acknowledgements, fills, cancels, expiries.

The executions feed, the QueryOrders poll, ``AddOrder`` answers, cancels and
reconciliation all end here, so each kind of change is made one way:

* :meth:`OrderTracker.move` – a state transition, conditional on the state read
  (a concurrent change makes it re-read and re-decide), recorded and published;
* :meth:`OrderTracker.record_fill` – a fill, idempotent on ``fill_id``;
* :meth:`OrderTracker.sync` – bring an order in line with a venue REST report
  (missing fills fetched with ``QueryTrades`` first, then the state);
* :meth:`OrderTracker.adopt` – a venue order the OMS does not know.

Side effects of reaching a state live here too: the capital reservation is
consumed or released when an order ends, and an order acknowledged after a
cancel was asked for (or after its account's kill switch fired) is cancelled.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from sandbox.services.oms import states, store
from sandbox.services.oms.capital import CapitalClient
from sandbox.services.oms.events import EventPublisher
from sandbox.services.oms.instruments import Instrument, InstrumentCatalog
from sandbox.services.oms.ownership import is_canonical_uuid
from sandbox.services.oms.kraken_client import KrakenApiError, KrakenClient
from sandbox.services.oms.store import FillOutcome, FillRecord, OrderRecord
from sandbox.services.oms.venue_reports import ReportError, VenueOrder, adopted_order, rest_fill, venue_order

log = logging.getLogger("sandbox.services.oms.tracker")

RECENT_ORDERS = 20_000


class RecentOrders:
    """The orders this process wrote lately, as last written (a bounded LRU).

    Used to skip venue events that cannot change anything (the
    acknowledgement of an order already acknowledged, a fill total already
    recorded) and to apply at once the events of another replica's orders this
    one has written (:mod:`.ownership`); every change is still made against the
    database, conditionally.
    A cached order may be behind the database (another replica changed it), never ahead.
    """

    def __init__(self, size: int = RECENT_ORDERS) -> None:
        self.size = size
        self._orders: OrderedDict[str, OrderRecord] = OrderedDict()

    def put(self, order: OrderRecord) -> OrderRecord:
        """Remember ``order`` (returns it)."""
        self._orders[order.id] = order
        self._orders.move_to_end(order.id)
        if len(self._orders) > self.size:
            self._orders.popitem(last=False)
        return order

    def get(self, order_id: str | None) -> OrderRecord | None:
        """The cached order, if any."""
        return self._orders.get(order_id) if order_id else None


class OrderTracker:
    """Venue-driven order changes (shared by the feed, the poll, the API and reconciliation)."""

    def __init__(self, *, pool: Any, catalog: Callable[[], InstrumentCatalog], kraken: Callable[[], KrakenClient | None],
                 events: EventPublisher, capital: CapitalClient, adopt_account: str,
                 kill_switch_active: Callable[[str], bool], counters: Any = None) -> None:
        """``catalog`` and ``kraken`` are getters (both can be replaced at run time)."""
        self.pool = pool
        self.catalog = catalog
        self.kraken = kraken
        self.events = events
        self.capital = capital
        self.adopt_account = adopt_account
        self.kill_switch_active = kill_switch_active
        self.counters = counters
        self.recent = RecentOrders()
        #: orders whose AddOrder this process is sending -> the txid the executions feed reported, if any
        self.submitting: dict[str, str | None] = {}
        #: orders with a fill being written by this process -> done when the write returned (see :meth:`move`)
        self._filling: dict[str, asyncio.Future[None]] = {}

    def instrument(self, order: OrderRecord) -> Instrument | None:
        """The instrument of an order (by its venue pair key)."""
        catalog = self.catalog()
        return catalog.by_key.get(order.pair) or catalog.find(order.symbol)

    def _count(self, name: str, *labels: str) -> None:
        if self.counters is not None and name in self.counters:
            self.counters[name].labels(*labels).inc()

    # -- transitions ---------------------------------------------------------------------------

    async def move(self, order: OrderRecord, target: str, reason: str, *, detail: Any = None,
                   txid: str | None = None, add_reasons: list[dict[str, Any]] | None = None) -> OrderRecord:
        """Move ``order`` to ``target`` if the machine allows it from its current state; returns the order now."""
        # A fill of this order is being written (a marketable order's trade event came before its AddOrder
        # answer): it moves the state, so a conditional write sent now would fail and the row be read again.
        # Wait for it instead (one database round trip, not two or three).
        filling = self._filling.get(order.id)
        if filling is not None:
            await asyncio.shield(filling)
        # Start from what this process wrote since ``order`` was read (mostly: the feed recorded a marketable
        # order's fill while its acknowledgement came back), instead of a conditional write bound to fail.
        order = self._written_since(order) or order
        for _ in range(5):
            if order.state == target or (target == states.NEW and order.state != states.PENDING_NEW):
                # already there, or a late acknowledgement of an order that has moved on (filled, cancelled)
                if txid and not order.txid:
                    await store.set_txid(self.pool, order.id, txid)
                    order.txid = txid
                return self.recent.put(order)
            if not states.can_transition(order.state, target):
                self._count("invalid", order.state, target)
                log.info("transition ignored", extra={"order_id": order.id, "from": order.state, "to": target,
                                                      "reason": reason})
                return order
            done = await store.transition(self.pool, order, target, reason, detail=detail, txid=txid,
                                          add_reasons=add_reasons)
            if done is not None:
                updated, step = done
                self.events.order(updated, step)
                self._count("transitions", target)
                self.recent.put(updated)
                await self._after(updated, step.from_state or "")
                return self.recent.get(updated.id) or updated
            fresh = self._written_since(order) or await store.get_order(self.pool, order.id)
            if fresh is None:
                return order
            order = fresh
        return order

    def _written_since(self, order: OrderRecord) -> OrderRecord | None:
        """The order as this process wrote it after ``order`` (by ``updated_at``), else None.

        A conditional move fails when the order changed meanwhile; mostly the
        executions feed recorded a marketable order's fill while its
        acknowledgement was being written, and put the result here. Starting
        again from that version saves re-reading the row; the cache is never
        ahead of the database, so a stale start only fails once more and the
        next try reads the row (``updated_at`` strictly grows each time).
        """
        cached = self.recent.get(order.id)
        if cached is None or cached.updated_at is None or order.updated_at is None:
            return None
        return cached if cached.updated_at > order.updated_at else None

    async def _after(self, order: OrderRecord, previous: str) -> None:
        """Side effects of reaching ``order.state``."""
        if states.is_terminal(order.state):
            await self.settle_capital(order)
        elif order.state == states.NEW and previous == states.PENDING_NEW:
            if order.cancel_requested or self.kill_switch_active(order.account):
                why = "cancel requested before acknowledgement" if order.cancel_requested else "kill switch active"
                await self.cancel_at_venue(order, why)

    async def settle_capital(self, order: OrderRecord) -> None:
        """An order ended: consume what fills used and release the rest (or release all)."""
        if not order.strategy or order.capital_state != "reserved" or not self.capital.enabled:
            return
        if order.filled_qty > 0:
            self.capital.consume(order.strategy, order.id, order.filled_cost + order.fees, final=True)
            await store.set_capital(self.pool, order.id, "consumed")
        else:
            self.capital.release(order.strategy, order.id)
            await store.set_capital(self.pool, order.id, "released")

    # -- fills ---------------------------------------------------------------------------------

    async def record_fill(self, fill: FillRecord, inst: Instrument, *, venue_state: str | None = None,
                          txid: str | None = None) -> FillOutcome | None:
        """Record a fill (a repeat is a no-op); publishes the fill and any transition it caused."""
        mine = None
        if fill.order_id not in self._filling:
            self._filling[fill.order_id] = mine = asyncio.get_running_loop().create_future()
        try:
            outcome = await store.record_fill(self.pool, fill, base=inst.base, quote=inst.quote, txid=txid,
                                              venue_state=venue_state)
            if outcome is not None and outcome.fill is not None:
                self.recent.put(outcome.order)  # before waking a waiting move (it starts from this version)
        finally:
            if mine is not None:
                del self._filling[fill.order_id]
                mine.set_result(None)
        if outcome is None or outcome.fill is None:
            return outcome
        order = outcome.order
        self.events.fill(outcome.fill, order.client_order_id)
        self._count("fills", fill.source)
        if outcome.transition is not None:
            self.events.order(order, outcome.transition)
            self._count("transitions", order.state)
        if order.strategy and order.capital_state == "reserved" and self.capital.enabled:
            if states.is_terminal(order.state):
                await self.settle_capital(order)
            else:
                self.capital.consume(order.strategy, order.id, order.filled_cost + order.fees, final=False)
        return outcome

    # -- venue reports -------------------------------------------------------------------------

    async def sync(self, order: OrderRecord, report: VenueOrder, *, source: str) -> tuple[OrderRecord, list[str]]:
        """Make ``order`` agree with the venue's ``report``; returns the order and what changed.

        Missing fills come first (``QueryTrades`` for the report's trade ids the
        OMS has not recorded), then the state the report implies.
        """
        changes: list[str] = []
        if report.txid and order.txid != report.txid and order.txid is None:
            await store.set_txid(self.pool, order.id, report.txid)
            order.txid = report.txid
        if report.vol_exec > order.filled_qty:
            applied = await self.fetch_fills(order, report, source=source)
            if applied:
                changes.append(f"fills:{len(applied)}")
                order = await store.get_order(self.pool, order.id) or order
        target = report.state
        if target is None or target == order.state:
            return order, changes
        if target in (states.NEW, states.PARTIALLY_FILLED) and order.state == states.PENDING_NEW:
            order = await self.move(order, states.NEW, "venue_acknowledged", txid=report.txid,
                                    detail={"source": source})
            changes.append("acknowledged")
        elif target in (states.CANCELED, states.EXPIRED) and not states.is_terminal(order.state):
            order = await self.move(order, target, f"venue_{target}", txid=report.txid,
                                    detail={"source": source, "venue_reason": report.reason,
                                            "vol_exec": format(report.vol_exec, "f")})
            changes.append(target)
        elif target == states.FILLED and order.state != states.FILLED:
            if order.filled_qty >= order.qty:
                order = await self.move(order, states.FILLED, "venue_filled", detail={"source": source})
                changes.append("filled")
            else:
                changes.append("fills_unavailable")
        return order, changes

    async def fetch_fills(self, order: OrderRecord, report: VenueOrder, *, source: str) -> list[FillRecord]:
        """Fetch and record the report's trades the OMS has not recorded; returns the ones recorded now."""
        client, inst = self.kraken(), self.instrument(order)
        if client is None or inst is None or not report.trades:
            return []
        known = await store.known_fill_ids(self.pool, list(report.trades))
        missing = [t for t in report.trades if t not in known]
        if not missing:
            return []
        trades = await client.query_trades(missing)
        applied = []
        for trade_id, info in sorted(trades.items(), key=lambda kv: str(kv[1].get("time", ""))):
            try:
                fill = rest_fill(trade_id, info, order, inst, source=source, fee_in_base=report.fee_in_base)
            except ReportError as exc:
                log.warning("unreadable trade skipped", extra={"trade": trade_id, "error": str(exc)})
                continue
            outcome = await self.record_fill(fill, inst, venue_state=report.state)
            if outcome is not None and outcome.fill is not None:
                applied.append(outcome.fill)
        return applied

    async def adopt(self, report: VenueOrder, *, source: str) -> OrderRecord | None:
        """Create the OMS order for a venue order it does not know, then sync it; None when unreadable."""
        order_id = report.cl_ord_id if is_canonical_uuid(report.cl_ord_id) else store.new_order_id()
        try:
            rec = adopted_order(report, self.catalog(), order_id=order_id, account=self.adopt_account)
        except ReportError as exc:
            log.warning("venue order not adopted", extra={"txid": report.txid, "error": str(exc)})
            return None
        steps: list[tuple[str | None, str, str, Any]] = [(None, states.PENDING_NEW, "adopted", {"source": source})]
        if rec.state == states.NEW:
            steps.append((states.PENDING_NEW, states.NEW, "adopted", {"txid": report.txid}))
        inserted = await store.insert_order(self.pool, rec, steps)
        if inserted is None:  # adopted concurrently (another replica), or the client id is taken
            return await store.find_venue_order(self.pool, report.txid, report.cl_ord_id)
        order, transitions = inserted
        self.recent.put(order)
        self.events.order(order, transitions)
        self._count("adopted", source)
        order, _ = await self.sync(order, report, source=source)
        return order

    # -- cancels -------------------------------------------------------------------------------

    async def cancel_at_venue(self, order: OrderRecord, why: str) -> OrderRecord:
        """Cancel an open order at the venue and record it; returns the order now.

        Without a txid yet (``AddOrder`` unanswered) the cancel goes by client
        order id and is also remembered, so the acknowledgement cancels it.
        Raises :class:`~.kraken_client.KrakenError` when the venue cannot be asked.
        """
        client = self.kraken()
        if client is None or states.is_terminal(order.state):
            return order
        if order.txid is None:
            await store.set_cancel_requested(self.pool, order.id)
            order.cancel_requested = True
        try:
            count = (await client.cancel_order(txid=order.txid) if order.txid
                     else await client.cancel_order(cl_ord_id=order.id))
        except KrakenApiError as exc:
            if not any(e.startswith("EOrder:Unknown order") for e in exc.errors):
                raise
            count = 0
        if count > 0:
            return await self.move(order, states.CANCELED, "canceled", detail={"why": why})
        if order.txid is None:
            return order  # not at the venue yet: the acknowledgement will cancel it
        # Not open at the venue any more: learn how it ended.
        reports = await client.query_orders([order.txid], trades=True)
        info = reports.get(order.txid)
        if info is not None:
            order, _ = await self.sync(order, venue_order(order.txid, info), source="cancel")
        return order


__all__ = ["OrderTracker"]
