"""The OMS fill consumer: ``oms.fills`` on Kafka moves positions, in a background thread.

confluent-kafka's consumer blocks, so it runs in its own thread; each batch is
handed to the event loop (``run_coroutine_threadsafe``) and recorded in one
transaction, and only then are offsets committed: delivery is at-least-once and
the ``fill_id`` key makes redeliveries no-ops. A message that is not a valid
fill is counted and skipped; a database failure is retried with back-off
without committing. Replicas share the consumer group (each fill is applied
once) and learn about each other's position changes through LISTEN/NOTIFY.

ARCHITECTURE section 7: ``session.timeout.ms`` ~6000 for Tansu; topics are
created explicitly (the consumer creates the fills topic when it is missing).
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from sandbox.services.risk.models import FillEvent
from sandbox.services.risk.positions import Fill

log = logging.getLogger("sandbox.services.risk.consumer")

BATCH_SIZE = 500
POLL_TIMEOUT_S = 0.5


def to_fill(event: FillEvent, now: datetime | None = None) -> Fill:
    """The accounting fill of an event; a timestamp in the future counts as now (clock skew)."""
    now = now or datetime.now(timezone.utc)
    return Fill(
        fill_id=event.fill_id, account=event.account, symbol=event.symbol, side=event.side, qty=event.qty,
        price=event.price, ts=min(event.ts, now), fee=event.fee, fee_currency=event.fee_currency,
        strategy=event.strategy, order_id=event.order_id,
    )


def parse_message(value: bytes | None) -> Fill | str:
    """A fill from a message value, or why it is not one (``empty``, ``invalid_json``, ``invalid_fill``)."""
    if not value:
        return "empty"
    try:
        doc = json.loads(value, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        return "invalid_json"
    if not isinstance(doc, dict):
        return "invalid_fill"
    try:
        return to_fill(FillEvent.model_validate(doc))
    except ValidationError:
        return "invalid_fill"


def parse_batch(values: Sequence[bytes | None]) -> tuple[list[Fill], dict[str, int]]:
    """The valid fills of a batch and the count of rejected messages per reason."""
    fills: list[Fill] = []
    rejected: dict[str, int] = {}
    for value in values:
        parsed = parse_message(value)
        if isinstance(parsed, str):
            rejected[parsed] = rejected.get(parsed, 0) + 1
        else:
            fills.append(parsed)
    return fills, rejected


class FillConsumer:
    """Consumes fills in a daemon thread and hands each batch to ``handler`` on the event loop."""

    def __init__(
        self,
        *,
        bootstrap: str,
        topic: str,
        group_id: str,
        handler: Callable[[list[Fill]], Awaitable[None]],
        on_rejected: Callable[[str, int], None],
        loop: asyncio.AbstractEventLoop,
        session_timeout_ms: int = 6000,
        partitions: int = 4,
        client_id: str = "risk-service",
    ) -> None:
        """Create (not start) the consumer."""
        self.topic = topic
        self._bootstrap = bootstrap
        self._partitions = partitions
        self._handler = handler
        self._on_rejected = on_rejected
        self._loop = loop
        self._config: dict[str, Any] = {
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
        self.consumed = 0
        self.last_error: str | None = None

    def start(self) -> None:
        """Start the consumer thread."""
        self._thread = threading.Thread(target=self._run, name="risk-fill-consumer", daemon=True)
        self._thread.start()

    async def stop(self, timeout: float = 15.0) -> None:
        """Stop the thread (it closes the consumer, leaving the group cleanly)."""
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, timeout)
            if self._thread.is_alive():
                log.warning("fill consumer did not stop in time")

    def health(self) -> str | None:
        """None when consuming, else the state and the last error."""
        if self.state == "consuming":
            return None
        return f"fill consumer {self.state}" + (f": {self.last_error}" if self.last_error else "")

    def ensure_topic(self) -> None:
        """Create the fills topic unless it exists."""
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
        self.state = "consuming"
        self.last_error = None
        try:
            while not self._stop.is_set():
                messages = consumer.consume(num_messages=BATCH_SIZE, timeout=POLL_TIMEOUT_S)
                if messages and not self._process(consumer, messages):
                    break
        finally:
            self.state = "stopped"
            consumer.close()

    def _process(self, consumer: Any, messages: list[Any]) -> bool:
        """Record one batch and commit; False when stopping while the database was failing."""
        values = []
        for message in messages:
            if message.error() is not None:
                self.last_error = str(message.error())
                log.warning("kafka consume error", extra={"error": self.last_error})
                continue
            values.append(message.value())
        fills, rejected = parse_batch(values)
        for reason, count in rejected.items():
            self._on_rejected(reason, count)
            log.warning("fill messages rejected", extra={"reason": reason, "count": count, "topic": self.topic})
        if fills and not self._deliver(fills):
            return False  # offsets stay uncommitted: the next owner of the partitions replays them
        self.consumed += len(values)
        try:
            consumer.commit(asynchronous=False)
        except Exception as exc:  # replays are harmless (idempotent), so a failed commit is not fatal
            self.last_error = f"commit: {exc}"
            log.warning("offset commit failed", extra={"error": str(exc)})
        return True

    def _deliver(self, fills: list[Fill]) -> bool:
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
