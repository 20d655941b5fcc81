"""The kit's Kafka producer: callback sends settle on the event loop with the broker's answer, records keep
``json.dumps``'s exact bytes, ``await produce`` still works alongside, failures reach the callback."""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, KafkaException

from sandbox.infra.ports import free_port
from sandbox.services.kit.kafka import KafkaProducer, encode

DOCS = [
    {"event_id": f"o-{i}:{i}", "type": "order.filled", "qty": "0.001", "price": None, "reasons": ["a", "é"],
     "detail": {"n": i, "x": 0.1 * i, "at": datetime(2026, 12, 4, tzinfo=timezone.utc), "d": Decimal("1.50")}}
    for i in range(40)
]


def test_encoding_is_json_dumps_byte_for_byte() -> None:
    for doc in DOCS + [{"nan": float("nan"), "big": 10**30, "s": "\u2603\ud800"}]:
        assert encode(doc) == json.dumps(doc, separators=(",", ":"), default=str).encode()


def consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    got: list[Any] = []
    try:
        deadline = time.monotonic() + 30
        while len(got) < count and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                got.append(msg)
    finally:
        consumer.close()
    return got


def test_sends_settle_on_the_loop_and_reach_the_topic(kafka_broker: Any) -> None:
    topic = f"kit-send-{secrets.token_hex(3)}"
    kafka_broker.create_topics([topic], 1)
    outcomes: list[tuple[int, Any, bool]] = []

    async def main() -> None:
        producer = KafkaProducer(kafka_broker.bootstrap, client_id="kit-kafka-it")
        try:
            loop_thread = threading.get_ident()
            for i, doc in enumerate(DOCS[:-1]):
                producer.send(topic, "acct-1", doc,
                              lambda err, i=i: outcomes.append((i, err, threading.get_ident() == loop_thread)))
            await producer.produce(topic, "acct-1", DOCS[-1])  # the awaitable path, queued behind the sends
            deadline = time.monotonic() + 30
            while len(outcomes) < len(DOCS) - 1 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await producer.close()

    asyncio.run(main())
    assert sorted(i for i, _, _ in outcomes) == list(range(len(DOCS) - 1))
    assert all(err is None and on_loop for _, err, on_loop in outcomes)
    records = consume(kafka_broker.bootstrap, topic, len(DOCS))
    assert [m.value() for m in records] == [json.dumps(d, separators=(",", ":"), default=str).encode() for d in DOCS]
    assert {m.key() for m in records} == {b"acct-1"}


def test_a_failed_delivery_reaches_the_callback_and_produce_raises() -> None:
    outcomes: list[Any] = []

    async def main() -> BaseException | None:
        producer = KafkaProducer(f"127.0.0.1:{free_port()}", config={"message.timeout.ms": 500})
        try:
            producer.send("nowhere", None, {"a": 1}, outcomes.append)
            try:
                await asyncio.wait_for(producer.produce("nowhere", None, {"a": 2}), 10)
            except KafkaException as exc:
                return exc
            return None
        finally:
            await producer.close(timeout=1)

    raised = asyncio.run(main())
    assert isinstance(raised, KafkaException)
    assert len(outcomes) == 1 and isinstance(outcomes[0], KafkaException)
