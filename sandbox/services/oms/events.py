"""Order and fill events to Kafka (``oms.orders``, ``oms.fills``), at least once.

Every transition and fill is first committed to PostgreSQL with
``published_at`` NULL. Events are handed to the kit's producer at once with
``KafkaProducer.send`` (the request never waits for the broker, and no task,
queue or future is spent per event); only when librdkafka's local queue is
full do they wait in a background queue, and later events queue behind them
(order is kept). Acknowledged ones are marked published in batches. A sweep re-sends what stayed unpublished
(broker down, process restarted), so consumers may see an event twice and must
be idempotent on ``fill_id`` / ``event_id`` (risk- and fees-service are).
Both topics are keyed by account, so one account's events stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Any

from sandbox.services.oms import store
from sandbox.services.oms.store import FillRecord, OrderRecord, Transition

log = logging.getLogger("sandbox.services.oms.events")

FLUSH_INTERVAL_S = 0.25
SWEEP_INTERVAL_S = 10.0
SWEEP_AGE_S = 15.0
BATCH = 256


def order_event(order: OrderRecord, step: Transition) -> dict[str, Any]:
    """The ``oms.orders`` message for one transition of ``order``."""
    avg = order.avg_price
    return {
        "event_id": f"{order.id}:{step.id}", "type": f"order.{step.to_state}", "order_id": order.id,
        "client_order_id": order.client_order_id, "account": order.account, "strategy": order.strategy,
        "symbol": order.symbol, "side": order.side, "order_type": order.type, "qty": format(order.qty, "f"),
        "price": format(order.price, "f") if order.price is not None else None, "state": step.to_state,
        "previous_state": step.from_state, "reason": step.reason, "detail": step.detail, "txid": order.txid,
        "filled_qty": format(order.filled_qty, "f"), "avg_price": format(avg, "f") if avg is not None else None,
        "reasons": order.reasons, "ts": step.at.isoformat(),
    }


@dataclass
class _Item:
    topic: str
    key: str
    doc: dict[str, Any]
    fill_id: str | None = None
    transition_id: int | None = None


class EventPublisher:
    """The background publisher (no-op when Kafka is not configured)."""

    def __init__(self, kafka: Any, pool: Any, *, orders_topic: str, fills_topic: str, counter: Any = None) -> None:
        """``kafka`` is the kit's ``KafkaProducer`` (or None); ``counter`` a Prometheus counter(topic, outcome)."""
        self.kafka = kafka
        self.pool = pool
        self.orders_topic = orders_topic
        self.fills_topic = fills_topic
        self.counter = counter
        self._queue: asyncio.Queue[_Item] = asyncio.Queue()
        self._done_fills: list[str] = []
        self._done_steps: list[int] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        #: Events handed to the producer whose delivery report has not come back yet.
        self._in_flight = 0
        self._idle = asyncio.Event()

    @property
    def enabled(self) -> bool:
        """Whether events are published at all."""
        return self.kafka is not None

    def order(self, order: OrderRecord, steps: list[Transition] | Transition | None) -> None:
        """Queue the events of ``steps`` (transitions of ``order``)."""
        if not self.enabled or steps is None:
            return
        for step in steps if isinstance(steps, list) else [steps]:
            self._publish(_Item(self.orders_topic, order.account, order_event(order, step), transition_id=step.id))

    def fill(self, fill: FillRecord, client_order_id: str) -> None:
        """Queue a fill."""
        if self.enabled:
            self._publish(_Item(self.fills_topic, fill.account, fill.event(client_order_id), fill_id=fill.fill_id))

    def _publish(self, item: _Item) -> None:
        """Send ``item`` now, or queue it behind the backlog (local queue full, or stopping)."""
        if self._queue.empty() and not self._stopping:
            try:
                self._send(item)
                return
            except BufferError:
                pass
        self._queue.put_nowait(item)

    def _send(self, item: _Item) -> None:
        """Hand ``item`` to the producer (``BufferError``: its local queue is full, nothing was sent)."""
        try:
            self.kafka.send(item.topic, item.key, item.doc, functools.partial(self._delivered, item))
        except BufferError:
            raise
        except Exception as exc:  # noqa: BLE001 - refused (e.g. closed): the sweep re-sends
            self._in_flight += 1
            self._delivered(item, exc)
            return
        self._in_flight += 1

    def start(self) -> None:
        """Start the sender, the flusher and the sweep."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sender(), name="oms-events-sender"),
                       loop.create_task(self._flusher(), name="oms-events-flusher"),
                       loop.create_task(self._sweeper(), name="oms-events-sweeper")]

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued and wait for the broker's answers (bounded), mark them, stop the tasks."""
        if self.enabled:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained(), timeout)
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._flush()

    async def _drained(self) -> None:
        """Return once nothing is queued nor waiting for the broker."""
        while not self._queue.empty() or self._in_flight:
            self._idle.clear()
            await self._idle.wait()

    async def _sender(self) -> None:
        """Send the backlog, in order, as librdkafka's local queue makes room."""
        while True:
            item = await self._queue.get()
            while True:
                try:
                    self._send(item)
                    break
                except BufferError:
                    await asyncio.sleep(0.05)  # let librdkafka drain its queue
            self._queue.task_done()

    def _delivered(self, item: _Item, error: BaseException | None) -> None:
        """The broker's answer for ``item`` (on the event loop): mark it for the flusher, count it."""
        self._in_flight -= 1
        if error is None:
            if item.fill_id is not None:
                self._done_fills.append(item.fill_id)
            if item.transition_id is not None:
                self._done_steps.append(item.transition_id)
        else:
            log.warning("event not published (the sweep will retry)",
                        extra={"topic": item.topic, "error": str(error)})
        if self.counter is not None:
            self.counter.labels(item.topic, "ok" if error is None else "failed").inc()
        if not self._in_flight:
            self._idle.set()

    async def _flush(self) -> None:
        fills, steps = self._done_fills, self._done_steps
        if not fills and not steps:
            return
        self._done_fills, self._done_steps = [], []
        await store.mark_published(self.pool, fill_ids=fills, transition_ids=steps)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                await self._flush()
            except Exception as exc:  # noqa: BLE001 - database blip: the sweep re-sends, consumers dedupe
                log.warning("could not mark events published", extra={"error": str(exc)})

    async def _sweeper(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_S)
            try:
                await self.sweep()
            except Exception as exc:  # noqa: BLE001 - try again next period
                log.warning("event sweep failed", extra={"error": str(exc)})

    async def sweep(self, age_s: float = SWEEP_AGE_S) -> int:
        """Re-queue events unpublished for ``age_s``; returns how many."""
        if not self.enabled or self._queue.qsize() + self._in_flight > BATCH:
            return 0
        count = 0
        for fill, cid in await store.unpublished_fills(self.pool, age_s):
            self.fill(fill, cid)
            count += 1
        steps = await store.unpublished_transitions(self.pool, age_s)
        orders: dict[str, OrderRecord | None] = {}
        for step in steps:
            if step.order_id not in orders:
                orders[step.order_id] = await store.get_order(self.pool, step.order_id)
            order = orders[step.order_id]
            if order is not None:
                self.order(order, step)
                count += 1
        if count:
            log.info("re-sending unpublished events", extra={"count": count})
        return count
