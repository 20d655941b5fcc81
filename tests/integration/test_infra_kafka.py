"""Embedded Kafka-compatible broker (Tansu): explicit topics, produce then consume and count.

Counts come from consuming, never from watermarks (Tansu's high watermark is
the last batch's base offset + 1, see ARCHITECTURE.md section 7).
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

from sandbox.infra.kafka import EmbeddedKafka, metadata_brokers

pytestmark = pytest.mark.integration

MESSAGES = 1000


def _produce(broker: EmbeddedKafka, topic: str, count: int) -> None:
    producer = Producer(broker.producer_config())
    failures: list[str] = []

    def on_delivery(err, _msg) -> None:
        if err is not None:
            failures.append(str(err))

    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=f"fill-{i}".encode(), on_delivery=on_delivery)
        producer.poll(0)
    assert producer.flush(15) == 0
    assert failures == []


def _consume(consumer: Consumer, expected: int, deadline_s: float) -> set[bytes]:
    keys: set[bytes] = set()
    deadline = time.monotonic() + deadline_s
    while len(keys) < expected and time.monotonic() < deadline:
        for msg in consumer.consume(num_messages=500, timeout=0.5):
            assert msg.error() is None, msg.error()
            keys.add(msg.key())
    return keys


def test_metadata_names_the_loopback_broker(kafka_broker: EmbeddedKafka, listening_addresses) -> None:
    assert metadata_brokers("127.0.0.1", kafka_broker.port) == [("127.0.0.1", kafka_broker.port)]
    assert listening_addresses(kafka_broker.port) == {"127.0.0.1"}
    assert kafka_broker.persistent is False


def test_create_topics_is_explicit_and_idempotent(kafka_broker: EmbeddedKafka) -> None:
    assert kafka_broker.create_topics(["orders.v1", "fills.v1"], partitions=3) == {"orders.v1": 3, "fills.v1": 3}
    assert kafka_broker.create_topics(["orders.v1"], partitions=3) == {"orders.v1": 3}


def test_produce_then_consume_and_count(kafka_broker: EmbeddedKafka) -> None:
    kafka_broker.create_topics(["count.v1"], partitions=3)
    _produce(kafka_broker, "count.v1", MESSAGES)

    consumer = Consumer(kafka_broker.client_config(**{"group.id": "unused", "enable.auto.commit": False}))
    try:
        consumer.assign([TopicPartition("count.v1", p, OFFSET_BEGINNING) for p in range(3)])
        keys = _consume(consumer, MESSAGES, deadline_s=20)
    finally:
        consumer.close()
    assert keys == {str(i).encode() for i in range(MESSAGES)}


def test_consumer_group_reads_everything(kafka_broker: EmbeddedKafka) -> None:
    kafka_broker.create_topics(["group.v1"], partitions=2)
    _produce(kafka_broker, "group.v1", 200)

    consumer = Consumer(kafka_broker.consumer_config("it-group"))
    try:
        consumer.subscribe(["group.v1"])
        keys = _consume(consumer, 200, deadline_s=30)
    finally:
        consumer.close()
    assert len(keys) == 200
