"""Order and fill events to Kafka (``oms.orders``, ``oms.fills``), at least once.

Every transition and fill is first committed to PostgreSQL with
``published_at`` NULL. Events go out through the kit's producer from a
background queue (the request never waits for the broker); acknowledged ones
are marked published in batches. A sweep re-sends what stayed unpublished
(broker down, process restarted), so consumers may see an event twice and must
be idempotent on ``fill_id`` / ``event_id`` (risk- and fees-service are).
Both topics are keyed by account, so one account's events stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
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

    @property
    def enabled(self) -> bool:
        """Whether events are published at all."""
        return self.kafka is not None

    def order(self, order: OrderRecord, steps: list[Transition] | Transition | None) -> None:
        """Queue the events of ``steps`` (transitions of ``order``)."""
        if not self.enabled or steps is None:
            return
        for step in steps if isinstance(steps, list) else [steps]:
            self._queue.put_nowait(_Item(self.orders_topic, order.account, order_event(order, step),
                                         transition_id=step.id))

    def fill(self, fill: FillRecord, client_order_id: str) -> None:
        """Queue a fill."""
        if self.enabled:
            self._queue.put_nowait(_Item(self.fills_topic, fill.account, fill.event(client_order_id),
                                         fill_id=fill.fill_id))

    def start(self) -> None:
        """Start the sender, the flusher and the sweep."""
        if not self.enabled:
            return
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._sender(), name="oms-events-sender"),
                       loop.create_task(self._flusher(), name="oms-events-flusher"),
                       loop.create_task(self._sweeper(), name="oms-events-sweeper")]

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (bounded), mark it, stop the tasks."""
        self._stopping = True
        if self.enabled:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._queue.join(), timeout)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._flush()

    async def _sender(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty() and len(batch) < BATCH:
                batch.append(self._queue.get_nowait())
            results = await asyncio.gather(
                *(self.kafka.produce(i.topic, i.key, i.doc) for i in batch), return_exceptions=True
            )
            for item, result in zip(batch, results, strict=True):
                ok = not isinstance(result, BaseException)
                if ok:
                    if item.fill_id is not None:
                        self._done_fills.append(item.fill_id)
                    if item.transition_id is not None:
                        self._done_steps.append(item.transition_id)
                else:
                    log.warning("event not published (the sweep will retry)",
                                extra={"topic": item.topic, "error": str(result)})
                if self.counter is not None:
                    self.counter.labels(item.topic, "ok" if ok else "failed").inc()
                self._queue.task_done()

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
        if not self.enabled or self._queue.qsize() > BATCH:
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
