"""The OMS's event publisher: events go to the producer at once, in order, wait behind a full local queue,
and are marked published only once the broker acknowledged them (no servers: a recording producer)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaException

from sandbox.services.oms import events as events_mod
from sandbox.services.oms import store
from sandbox.services.oms.events import EventPublisher, _Item


class Producer:
    """Records sends; ``full`` sends raise BufferError; answers come when the test says so."""

    def __init__(self) -> None:
        self.sent: list[Any] = []
        self.pending: list[Callable[[Any], None]] = []
        self.full = 0

    def send(self, topic: str, key: Any, value: Any, on_done: Callable[[Any], None]) -> None:
        if self.full:
            self.full -= 1
            raise BufferError("local queue full")
        self.sent.append((topic, key, value["n"]))
        self.pending.append(on_done)

    def answer(self, error: Any = None) -> None:
        pending, self.pending = self.pending, []
        for on_done in pending:
            on_done(error)


class Counter:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def labels(self, topic: str, outcome: str) -> Counter:
        self._key = (topic, outcome)
        return self

    def inc(self) -> None:
        self.counts[self._key] = self.counts.get(self._key, 0) + 1


@pytest.fixture
def marked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], list[int]]]:
    calls: list[tuple[list[str], list[int]]] = []

    async def mark_published(_db: Any, *, fill_ids: Any = None, transition_ids: Any = None) -> None:
        calls.append((list(fill_ids or []), list(transition_ids or [])))

    monkeypatch.setattr(store, "mark_published", mark_published)
    monkeypatch.setattr(events_mod, "SWEEP_INTERVAL_S", 3600.0)
    return calls


def item(n: int) -> _Item:
    return _Item("oms.orders", "acct-1", {"n": n}, transition_id=n)


def test_events_are_sent_at_once_and_marked_when_acknowledged(marked: list[Any]) -> None:
    async def main() -> tuple[Producer, Counter]:
        kafka, counter = Producer(), Counter()
        pub = EventPublisher(kafka, None, orders_topic="oms.orders", fills_topic="oms.fills", counter=counter)
        pub.start()
        pub._publish(item(1))
        pub._publish(_Item("oms.fills", "acct-1", {"n": 2}, fill_id="f-2"))
        assert [n for _, _, n in kafka.sent] == [1, 2], "no task hop: sent during the call"
        kafka.answer()
        await pub.stop()
        return kafka, counter

    _, counter = asyncio.run(main())
    assert marked == [(["f-2"], [1])]
    assert counter.counts == {("oms.orders", "ok"): 1, ("oms.fills", "ok"): 1}


def test_a_full_local_queue_keeps_the_order_and_stop_waits_for_the_answers(marked: list[Any]) -> None:
    async def main() -> Producer:
        kafka = Producer()
        pub = EventPublisher(kafka, None, orders_topic="oms.orders", fills_topic="oms.fills")
        pub.start()
        kafka.full = 2  # the first try and the sender's first retry
        for n in (1, 2, 3):
            pub._publish(item(n))
        assert kafka.sent == [], "2 and 3 queue behind 1"
        stopping = asyncio.ensure_future(pub.stop(timeout=5))
        while len(kafka.sent) < 3:
            await asyncio.sleep(0.01)
        assert not stopping.done(), "stop waits for the broker's answers"
        kafka.answer()
        await stopping
        return kafka

    kafka = asyncio.run(main())
    assert [n for _, _, n in kafka.sent] == [1, 2, 3]
    assert marked == [([], [1, 2, 3])]


def test_failed_deliveries_are_counted_and_left_for_the_sweep(marked: list[Any]) -> None:
    async def main() -> Counter:
        kafka, counter = Producer(), Counter()
        pub = EventPublisher(kafka, None, orders_topic="oms.orders", fills_topic="oms.fills", counter=counter)
        pub.start()
        pub._publish(item(1))
        kafka.answer(KafkaException("broker down"))
        await pub.stop()
        return counter

    counter = asyncio.run(main())
    assert counter.counts == {("oms.orders", "failed"): 1}
    assert marked == []
