"""The OMS fill consumer: ``oms.fills`` on Kafka into the fills table, in a background thread.

confluent-kafka's consumer is blocking, so it runs in its own thread; each
batch is handed to the event loop (``run_coroutine_threadsafe``) and recorded
in one transaction, and only then are the offsets committed: delivery is
at-least-once and the fill-id idempotency makes replays harmless (Tansu
re-reads with ``auto.offset.reset=latest``; we start from ``earliest``).
A message that is not a valid fill is counted and skipped, never retried
forever; a database failure is retried (with back-off) without committing.

ARCHITECTURE section 7: session.timeout.ms ~6000 for Tansu, topics created
explicitly (the consumer creates ``oms.fills`` when it does not exist).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from sandbox.services.fees.models import FillEvent

log = logging.getLogger("sandbox.services.fees.consumer")

BATCH_SIZE = 500
POLL_TIMEOUT_S = 0.5
#: How often the consumer thread checks that the broker answers (for readiness).
PROBE_INTERVAL_S = 5.0


@dataclass
class ParsedBatch:
    """Valid fills of a batch and the reasons the others were rejected."""

    fills: list[FillEvent] = field(default_factory=list)
    rejected: dict[str, int] = field(default_factory=dict)


def parse_message(value: bytes | None) -> FillEvent | str:
    """A fill from a message value, or the reason it is not one (``invalid_json``, ``invalid_fill``)."""
    if not value:
        return "empty"
    try:
        doc = json.loads(value, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return "invalid_json"
    if not isinstance(doc, dict):
        return "invalid_fill"
    try:
        return FillEvent.model_validate(doc)
    except ValidationError:
        return "invalid_fill"


def parse_batch(values: Sequence[bytes | None]) -> ParsedBatch:
    """Parse many message values."""
    batch = ParsedBatch()
    for value in values:
        parsed = parse_message(value)
        if isinstance(parsed, str):
            batch.rejected[parsed] = batch.rejected.get(parsed, 0) + 1
        else:
            batch.fills.append(parsed)
    return batch


Handler = Callable[[list[FillEvent]], Awaitable[None]]
Rejected = Callable[[str, int], None]


class FillConsumer:
    """Consumes fills in a daemon thread and hands each batch to ``handler`` on the event loop."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        handler: Handler,
        on_rejected: Rejected,
        loop: asyncio.AbstractEventLoop,
        session_timeout_ms: int = 6000,
        partitions: int = 4,
        client_id: str = "fees-service",
    ) -> None:
        """Create (not start) the consumer."""
        self.topic = topic
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._handler = handler
        self._on_rejected = on_rejected
        self._loop = loop
        self._config = {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "client.id": client_id,
            "session.timeout.ms": session_timeout_ms,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
        }
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.state = "created"
        self.broker_ok = False
        self.consumed = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Start the consumer thread."""
        self._thread = threading.Thread(target=self._run, name="fees-fill-consumer", daemon=True)
        self._thread.start()

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop the thread (it closes the consumer, leaving the group cleanly)."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
            if self._thread.is_alive():
                log.warning("fill consumer did not stop in time")

    def health(self) -> str | None:
        """None when consuming from a reachable broker, else the state / last error."""
        if self.state == "consuming" and self.broker_ok:
            return None
        state = self.state if self.state != "consuming" else "cannot reach the broker"
        return f"fill consumer {state}" + (f": {self.last_error}" if self.last_error else "")

    def _probe(self, consumer: Any) -> None:
        """Ask the broker for the topic's metadata (from the consumer thread) and record the outcome."""
        try:
            consumer.list_topics(self.topic, timeout=2.0)
        except Exception as exc:
            self.broker_ok = False
            self.last_error = f"broker: {exc}"
        else:
            self.broker_ok = True

    def ensure_topic(self) -> None:
        """Create the fills topic unless it exists (Tansu would auto-create it with 4 partitions)."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self._bootstrap})
        metadata = admin.list_topics(timeout=5.0)
        if self.topic in metadata.topics and metadata.topics[self.topic].error is None:
            return
        futures = admin.create_topics(
            [NewTopic(self.topic, num_partitions=self._partitions, replication_factor=1)], request_timeout=10.0
        )
        try:
            futures[self.topic].result(timeout=15.0)
            log.info("fills topic created", extra={"topic": self.topic, "partitions": self._partitions})
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise

    def _run(self) -> None:
        from confluent_kafka import Consumer

        self.state = "starting"
        delay = 0.2
        while not self._stop.is_set():
            try:
                self.ensure_topic()
                break
            except Exception as exc:  # broker not reachable yet: keep trying until stopped
                self.last_error = f"topic {self.topic}: {exc}"
                self.state = "waiting for broker"
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
        if self._stop.is_set():
            self.state = "stopped"
            return
        consumer = Consumer(self._config, logger=log)
        consumer.subscribe([self.topic])
        self.broker_ok = True  # it answered ensure_topic just now
        self.state = "consuming"
        self.last_error = None
        probed = time.monotonic()
        try:
            while not self._stop.is_set():
                if time.monotonic() - probed > PROBE_INTERVAL_S:
                    self._probe(consumer)
                    probed = time.monotonic()
                messages = consumer.consume(num_messages=BATCH_SIZE, timeout=POLL_TIMEOUT_S)
                if not messages:
                    continue
                values = []
                for message in messages:
                    if message.error() is not None:
                        self.last_error = str(message.error())
                        log.warning("kafka consume error", extra={"error": self.last_error})
                        continue
                    values.append(message.value())
                batch = parse_batch(values)
                for reason, count in batch.rejected.items():
                    self._on_rejected(reason, count)
                    log.warning("fill messages rejected", extra={"reason": reason, "count": count, "topic": self.topic})
                if batch.fills and not self._deliver(batch.fills):
                    break  # stopping while the database was failing: offsets stay uncommitted
                self.consumed += len(values)
                try:
                    consumer.commit(asynchronous=False)
                except Exception as exc:  # replays are harmless (idempotent), so a failed commit is not fatal
                    self.last_error = f"commit: {exc}"
                    log.warning("offset commit failed", extra={"error": str(exc)})
        finally:
            self.state = "stopped"
            consumer.close()

    def _deliver(self, fills: list[FillEvent]) -> bool:
        """Run the handler on the loop until it succeeds; False when asked to stop first."""
        delay = 0.2
        while not self._stop.is_set():
            future = asyncio.run_coroutine_threadsafe(self._handler(fills), self._loop)
            try:
                future.result(timeout=60.0)
                return True
            except Exception as exc:
                future.cancel()
                self.last_error = f"recording fills: {type(exc).__name__}: {exc}"
                log.warning("recording fills failed, will retry", extra={"error": self.last_error, "count": len(fills)})
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
        return False

