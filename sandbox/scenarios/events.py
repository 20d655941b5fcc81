"""The OMS's Kafka events as a scenario run sees them: one consumer for the whole run, indexed by order id.

The collector assigns every partition of ``oms.orders`` and ``oms.fills`` at
the offsets they had when the run started (no consumer group: no join delay,
and a Kafka-compatible broker whose high watermark lags only makes it re-read
a batch, filtered out by order id) and keeps each event once (``event_id`` /
``fill_id``: delivery is at least once).

Where the host cannot reach the broker (the docker runtime's offline set:
Tansu advertises only ``kafka:9092``), the same consumer runs in a one-off
container on the sandbox's network (``relay``, an argv from the runtime) and
streams each record to the collector as a JSON line on its stdout:

    python -m sandbox.scenarios.events --bootstrap kafka:9092 [TOPIC ...]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

TOPICS = ("oms.orders", "oms.fills")


def consume(bootstrap: str, topics: tuple[str, ...], emit: Callable[[str, bytes | None], None],
            ready: Callable[[], None], failed: Callable[[str], None], stop: threading.Event) -> None:
    """Assign every partition of ``topics`` at their current ends and ``emit(topic, value)`` until ``stop``.

    A record's error goes to ``failed`` (consuming goes on); raises what the client raises otherwise
    (an unreachable broker, a failed consumer).
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"aether-scenarios-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 50, "fetch.min.bytes": 1})
    try:
        metadata = consumer.list_topics(timeout=10.0).topics
        missing = [t for t in topics if t not in metadata]
        if missing:
            # A fresh broker where nothing produced yet (the docker runtime creates no topics at start):
            # create them as the local runtime does, or the first run has no partition to assign.
            from sandbox.infra.kafka import create_topics

            create_topics(bootstrap, missing)
            metadata = consumer.list_topics(timeout=10.0).topics
        assignment = []
        for topic in topics:
            partitions = sorted(metadata[topic].partitions) if topic in metadata else [0]
            for p in partitions:
                _, high = _high_watermark(consumer, TopicPartition(topic, p))
                assignment.append(TopicPartition(topic, p, max(0, high - 1)))
        consumer.assign(assignment)
        ready()
        while not stop.is_set():
            for msg in consumer.consume(num_messages=1000, timeout=0.1):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        failed(str(msg.error()))
                    continue
                emit(msg.topic(), msg.value())
    finally:
        consumer.close()


def _high_watermark(consumer: Any, partition: Any, attempts: int = 20) -> tuple[int, int]:
    """The partition's offsets, retried while a just-created partition has no leader yet."""
    from confluent_kafka import KafkaException

    for attempt in range(attempts):
        try:
            return consumer.get_watermark_offsets(partition, timeout=5.0)
        except KafkaException:
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)
    raise AssertionError("unreachable")


class EventCollector:
    """Consumes the OMS topics in a background thread while a run lasts (a context manager).

    ``relay``: an argv that runs this module where the broker is reachable (see the module docstring);
    ``None`` consumes from ``bootstrap`` directly.
    """

    def __init__(self, bootstrap: str, topics: tuple[str, ...] = TOPICS, relay: list[str] | None = None) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.relay = relay
        self._events: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        self._seen: set[str] = set()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self.error: str | None = None

    def __enter__(self) -> EventCollector:
        self._thread = threading.Thread(target=self._run_relay if self.relay else self._run, name="scenario-events",
                                        daemon=True)
        self._thread.start()
        self._ready.wait(60 if self.relay else 15)  # a relay starts a container first
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        if self._thread is not None:
            self._thread.join(10)
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(10)

    def _run(self) -> None:
        try:
            consume(self.bootstrap, self.topics, self._add, self._ready.set, self._failed, self._stop)
        except Exception as exc:  # noqa: BLE001 - reported with the expectations that need events
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    def _failed(self, error: str) -> None:
        self.error = error

    def _run_relay(self) -> None:
        assert self.relay is not None
        try:
            self._proc = proc = subprocess.Popen(  # noqa: S603 - the runtime's own argv
                [*self.relay, "--bootstrap", self.bootstrap, *self.topics],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            assert proc.stdout is not None
            for line in proc.stdout:
                try:
                    item = json.loads(line)
                except ValueError:
                    continue
                if "ready" in item:
                    self._ready.set()
                elif "error" in item:
                    self.error = item["error"]
                else:
                    self._add(item["topic"], None if item["value"] is None else item["value"].encode())
            if proc.wait() != 0 and not self._stop.is_set() and self.error is None:
                tail = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip().splitlines()[-2:]
                self.error = f"the Kafka relay exited with status {proc.returncode}: {' | '.join(tail)}"
        except OSError as exc:
            self.error = f"the Kafka relay did not start: {exc}"
        finally:
            self._ready.set()

    def _add(self, topic: str, value: bytes | None) -> None:
        try:
            event = json.loads(value or b"")
        except ValueError:
            return
        if not isinstance(event, dict) or not event.get("order_id"):
            return
        key = f"{topic}:{event.get('event_id') or event.get('fill_id')}"
        with self._cond:
            if key in self._seen:
                return
            self._seen.add(key)
            self._events[str(event["order_id"])][topic].append(event)
            self._cond.notify_all()

    def events(self, order_id: str, topic: str) -> list[dict[str, Any]]:
        """The events of one order on one topic so far, in arrival order."""
        with self._cond:
            return list(self._events.get(order_id, {}).get(topic, ()))

    def wait(self, order_id: str, topic: str, predicate: Any, timeout: float) -> list[dict[str, Any]]:
        """Wait until ``predicate(events)`` holds (or ``timeout``); returns the events."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                events = list(self._events.get(order_id, {}).get(topic, ()))
                left = deadline - time.monotonic()
                if predicate(events) or left <= 0:
                    return events
                self._cond.wait(min(left, 0.2))


def main(argv: list[str] | None = None) -> int:
    """The relay: every record of the topics (from their current ends) as a JSON line on stdout, until killed."""
    import signal

    parser = argparse.ArgumentParser(prog="python -m sandbox.scenarios.events", description=main.__doc__)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("topics", nargs="*", default=list(TOPICS))
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def write(item: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(item) + "\n")
        sys.stdout.flush()

    try:
        consume(args.bootstrap, tuple(args.topics), lambda topic, value: write(
            {"topic": topic, "value": None if value is None else value.decode("utf-8", "replace")}),
            lambda: write({"ready": True}), lambda error: write({"error": error}), stop)
    except Exception as exc:  # noqa: BLE001 - the collector reports it
        write({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
