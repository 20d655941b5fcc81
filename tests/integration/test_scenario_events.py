"""The scenario runner's OMS-event consumer against a broker where its topics do not exist yet."""

from __future__ import annotations

import threading
import uuid

from confluent_kafka import Producer

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.scenarios.events import consume


def test_absent_topics_are_created_and_their_first_records_consumed(kafka_broker: EmbeddedKafka) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = (f"test.scenario.{tag}.orders", f"test.scenario.{tag}.fills")
    got: list[tuple[str, bytes | None]] = []
    failures: list[str] = []
    ready, stop, errors = threading.Event(), threading.Event(), []

    def run() -> None:
        try:
            consume(kafka_broker.bootstrap, topics, lambda t, v: got.append((t, v)), ready.set, failures.append, stop)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(60) and not errors, errors
        producer = Producer({"bootstrap.servers": kafka_broker.bootstrap})
        for topic in topics:
            producer.produce(topic, b'{"first": true}')
        assert producer.flush(10) == 0
        for _ in range(200):
            if len(got) == 2:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(15)
    assert sorted(got) == sorted((t, b'{"first": true}') for t in topics)
    assert failures == [] and errors == []
    metadata = Producer({"bootstrap.servers": kafka_broker.bootstrap}).list_topics(timeout=10).topics
    assert all(len(metadata[t].partitions) == 1 for t in topics)
