"""A small asyncio wrapper around ``confluent_kafka.Producer`` (works with Kafka and Tansu)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

from confluent_kafka import KafkaException, Producer


class KafkaProducer:
    """``await produce(topic, key, value)`` resolves when the broker acknowledged the message."""

    def __init__(self, bootstrap: str, *, client_id: str = "aether", config: dict[str, Any] | None = None) -> None:
        """Create the producer and its delivery-poll thread (idempotent, acks=all)."""
        conf = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 30000,
            **(config or {}),
        }
        self._producer: Producer | None = Producer(conf)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="kafka-poll", daemon=True)
        self._thread.start()

    def _live(self) -> Producer:
        if self._producer is None:
            raise KafkaException("the producer is closed")
        return self._producer

    def _poll_loop(self) -> None:
        producer = self._producer
        while producer is not None and not self._closed.is_set():
            producer.poll(0.1)

    async def produce(self, topic: str, key: str | bytes | None, value: dict[str, Any]) -> None:
        """Send ``value`` as JSON; raise :class:`KafkaException` when delivery fails."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()

        def on_delivery(err: Any, _msg: Any) -> None:
            def settle() -> None:
                if fut.done():
                    return
                if err is not None:
                    fut.set_exception(KafkaException(err))
                else:
                    fut.set_result(None)

            loop.call_soon_threadsafe(settle)

        payload = json.dumps(value, separators=(",", ":"), default=str).encode()
        while True:
            try:
                self._live().produce(topic, key=key, value=payload, on_delivery=on_delivery)
                break
            except BufferError:
                await asyncio.sleep(0.05)  # local queue full: let the poll thread drain it
        await fut

    async def ping(self, timeout: float = 2.0) -> None:
        """Raise when the broker does not answer a metadata request within ``timeout``."""
        await asyncio.to_thread(self._live().list_topics, timeout=timeout)

    async def close(self, timeout: float = 5.0) -> None:
        """Flush outstanding messages and stop the poll thread."""
        if self._producer is None:
            return
        await asyncio.to_thread(self._producer.flush, timeout)
        self._closed.set()
        await asyncio.to_thread(self._thread.join, 2.0)
        # Drop the last reference so librdkafka is destroyed now (it stops reconnecting).
        self._producer = None
