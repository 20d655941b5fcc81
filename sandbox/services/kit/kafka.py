"""A small asyncio wrapper around ``confluent_kafka.Producer`` (works with Kafka and Tansu).

Two ways to send. ``await produce(...)`` resolves when the broker acknowledged
the message (one future per message: fine for occasional events). A busy
publisher (the OMS sends four events per order) uses :meth:`KafkaProducer.send`,
which is not a coroutine and costs no task nor future: its ``on_done`` callback
is called on the event loop with the delivery result. Delivery reports arrive on
librdkafka's poll thread; each poll hands all the reports it served to the loop
in one thread-safe call, instead of one cross-thread wake-up per message.

Records linger up to :data:`LINGER_MS` before a produce request leaves: each
request costs librdkafka's broker thread a wake-up, and each batch of delivery
reports a wake-up of the event loop. The OMS sends about four events per order
within a few milliseconds; at 5 ms most orders still cost a request or two, at
:data:`LINGER_MS` several orders share one. Consumers (risk, fees, the QA
scenarios' event waits) wait for events with timeouts of seconds.

Payloads are ``json.dumps(value, separators=(",", ":"), default=str)`` encoded as
UTF-8, byte for byte (consumers and tests read them); one encoder instance is
reused instead of building a new one per message.
"""

from __future__ import annotations

import asyncio
import functools
import json
import threading
from collections.abc import Callable
from typing import Any

from confluent_kafka import KafkaException, Producer

#: Called on the event loop with ``None`` (acknowledged) or the :class:`KafkaException` of a failed delivery.
DeliveryCallback = Callable[[KafkaException | None], None]

#: ``linger.ms``: how long a record may wait for others to share its produce request.
LINGER_MS = 25

_ENCODER = json.JSONEncoder(separators=(",", ":"), default=str)


def encode(value: Any) -> bytes:
    """The record payload of ``value``: the same bytes as ``json.dumps(value, separators=(",", ":"), default=str)``."""
    return _ENCODER.encode(value).encode()


def _settle(batch: list[tuple[DeliveryCallback | None, Any]]) -> None:
    """On the event loop: hand each delivery result to its callback."""
    for on_done, err in batch:
        if on_done is not None:
            on_done(None if err is None else KafkaException(err))


def _settle_future(fut: asyncio.Future[None], exc: KafkaException | None) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(None)


class KafkaProducer:
    """``await produce(topic, key, value)`` resolves when the broker acknowledged the message;
    ``send(topic, key, value, on_done)`` reports the same through a callback."""

    def __init__(self, bootstrap: str, *, client_id: str = "aether", config: dict[str, Any] | None = None) -> None:
        """Create the producer and its delivery-poll thread (idempotent, acks=all); ``config`` entries
        (librdkafka properties) override the defaults."""
        conf = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": LINGER_MS,
            "message.timeout.ms": 30000,
            **(config or {}),
        }
        self._producer: Producer | None = Producer(conf)
        #: Delivery reports not yet handed to their loop, per loop (``flush`` on another thread adds to them too).
        self._reports: dict[asyncio.AbstractEventLoop, list[tuple[DeliveryCallback | None, Any]]] = {}
        self._reports_lock = threading.Lock()
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
            self._dispatch()

    def _dispatch(self) -> None:
        """Poll thread: hand the reports of the last poll to their loops, one wake-up per loop."""
        if not self._reports:
            return
        with self._reports_lock:
            reports, self._reports = self._reports, {}
        for loop, batch in reports.items():
            try:
                loop.call_soon_threadsafe(_settle, batch)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                pass

    def _report(self, loop: asyncio.AbstractEventLoop, on_done: DeliveryCallback | None, err: Any, _msg: Any) -> None:
        """librdkafka's delivery callback (on the thread calling ``poll``/``flush``)."""
        with self._reports_lock:
            batch = self._reports.get(loop)
            if batch is None:
                self._reports[loop] = batch = []
            batch.append((on_done, err))

    def send(self, topic: str, key: str | bytes | None, value: Any, on_done: DeliveryCallback | None = None) -> None:
        """Queue ``value`` as JSON; ``on_done`` (if any) is later called on this event loop with the outcome.

        Raises :class:`BufferError` when librdkafka's local queue is full (nothing was queued: retry after a
        pause) and :class:`KafkaException` when the producer is closed or refuses the message.
        """
        self._live().produce(topic, key=key, value=encode(value),
                             on_delivery=functools.partial(self._report, asyncio.get_running_loop(), on_done))

    async def produce(self, topic: str, key: str | bytes | None, value: dict[str, Any]) -> None:
        """Send ``value`` as JSON; raise :class:`KafkaException` when delivery fails."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        while True:
            try:
                self.send(topic, key, value, functools.partial(_settle_future, fut))
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
        self._dispatch()  # reports served by the flush
        # Drop the last reference so librdkafka is destroyed now (it stops reconnecting).
        self._producer = None
