"""Publishing records to Kafka with confluent-kafka: batched, idempotent, topics created explicitly.

confluent-kafka is the client that works with both Apache Kafka and Tansu
(aiokafka's idempotent producer fails on Tansu).  Records are batched by
``linger.ms``; nothing flushes per message.  Delivery reports (served by
:meth:`Publisher.poll`) count what the broker acknowledged per topic and run,
keep the Kafka offsets of each run's first and last record, and time every
record from the frame's arrival to the broker's acknowledgement.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from typing import Any

from sandbox.ingest.stats import ACK_TIMES_CAP, Stats

log = logging.getLogger("sandbox.ingest.publisher")

#: Records produced between two polls of the delivery-report queue on the hot path.
POLL_EVERY = 256
#: Latencies kept pending at most before they are sorted into the histograms (8 bytes each;
#: the service also settles them every second and before every read).
SETTLE_EVERY = 65_536


_time_ns = time.time_ns


class _Lane:
    """One topic's references on the hot path, so a record costs no lookup by topic beyond one.

    ``run`` is the topic's :class:`~sandbox.ingest.stats.TopicRun` in ``stats_run`` (the run current
    when the lane was last pointed): a new run is noticed by identity and the lane re-pointed.
    """

    __slots__ = ("inflight", "run", "stats_run")

    def __init__(self, inflight: deque[int]) -> None:
        self.inflight = inflight
        self.run: Any = None
        self.stats_run: Any = None


class Publisher:
    """One confluent-kafka producer plus the topic bookkeeping of the ingest."""

    def __init__(self, bootstrap: str, stats: Stats, *, linger_ms: int = 5, partitions: int = 1, queue_kbytes: int = 32_768) -> None:
        from confluent_kafka import Producer

        self.bootstrap = bootstrap
        self.stats = stats
        self.partitions = partitions
        self.known_topics: set[str] = set()
        self._since_poll = 0
        #: per topic, ``recv_ns, produce_ns`` (flat: two ints, no tuple for the garbage collector to
        #: track) of each record awaiting its delivery report.  One symbol per topic and the symbol
        #: as key: one partition, so reports come back in this order.
        self._inflight: defaultdict[str, deque[int]] = defaultdict(deque)
        #: per topic, the references its records touch (see :class:`_Lane`)
        self._lanes: dict[str, _Lane] = {}
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "client.id": "kraken-ws-ingest",
                "linger.ms": linger_ms,
                "enable.idempotence": True,
                "acks": "all",
                "batch.num.messages": 10_000,
                # The queue is the ingest's largest buffer: hold it well inside the 128 MiB budget.
                "queue.buffering.max.kbytes": queue_kbytes,
                "queue.buffering.max.messages": 200_000,
                "on_delivery": self._delivered,
            }
        )
        self._produce = self._producer.produce

    # ---- topics -------------------------------------------------------------------------

    def ensure_topics(self, topics: Iterable[str], timeout: float = 15.0) -> list[str]:
        """Create the topics not created yet (blocking; run it off the event loop). Returns those created."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

        wanted = [t for t in dict.fromkeys(topics) if t not in self.known_topics]
        if not wanted:
            return []
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics(
            [NewTopic(t, num_partitions=self.partitions, replication_factor=1) for t in wanted],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for topic, future in futures.items():
            try:
                future.result(timeout=timeout)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise
        deadline = time.monotonic() + timeout
        while True:  # created is not yet visible: producing before metadata lists it would auto-create
            listed = admin.list_topics(timeout=timeout).topics
            missing = [t for t in wanted if t not in listed or listed[t].error is not None]
            if not missing:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics not visible after creation: {', '.join(missing)}")
            time.sleep(0.05)
        self.known_topics.update(wanted)
        log.info("created topics %s", ", ".join(wanted))
        return wanted

    # ---- records ------------------------------------------------------------------------

    def produce(self, topic: str, key: bytes, value: bytes, recv_ns: int, seq: int, frame_ref: int = 0) -> None:
        """Queue one record; blocks briefly (backpressure) only while the producer queue is full.

        ``frame_ref`` names the frame the record came from: ``connection serial << 32 | frame number``.
        """
        produce_ns = _time_ns()
        try:
            # CreateTime (set by the client now) is microseconds after the frame's arrival.
            self._produce(topic, value, key)
        except BufferError:
            self._produce_when_room(topic, value, key)
        stats = self.stats
        lane = self._lanes.get(topic)
        if lane is None or lane.stats_run is not stats.run:
            lane = self._lane(topic)
        lane.inflight.extend((recv_ns, produce_ns))
        stats.produced[topic] += 1
        run = lane.run
        run.produced += 1
        if run.first_seq is None:
            run.first_seq = seq
        run.last_seq = seq
        refs = run.frame_ref
        if len(refs) < ACK_TIMES_CAP:
            refs.append(frame_ref)
        self._since_poll += 1
        if self._since_poll >= POLL_EVERY:
            self._since_poll = 0
            self._producer.poll(0)

    def _lane(self, topic: str) -> _Lane:
        """``topic``'s lane, pointed at the current run (a new run, or the topic's first record)."""
        lane = self._lanes.get(topic)
        stats = self.stats
        if lane is None:
            lane = self._lanes[topic] = _Lane(self._inflight[topic])
        lane.stats_run = stats.run
        lane.run = stats.run.topics[topic]
        return lane

    def _produce_when_room(self, topic: str, value: bytes, key: bytes) -> None:
        """The producer queue is full: serve delivery reports until there is room for the record."""
        while True:
            self._producer.poll(0.01)
            try:
                self._produce(topic, value, key)
                return
            except BufferError:
                continue

    def poll(self) -> int:
        """Serve pending delivery reports now; returns how many records still await acknowledgement."""
        self._producer.poll(0)
        self.stats.producer_queue = queued = len(self._producer)
        return queued

    def flush(self, timeout: float = 10.0) -> int:
        """Wait until every queued record is acknowledged (blocking); returns how many are left."""
        left = self._producer.flush(timeout)
        self.stats.producer_queue = left
        return left

    def _delivered(self, err: Any, msg: Any) -> None:
        # Once per record (the hot path's other half): the latency is only appended here, see Stats.settle.
        topic = msg.topic()
        stats = self.stats
        lane = self._lanes.get(topic)
        if lane is None or lane.stats_run is not stats.run:
            lane = self._lane(topic)
        run = lane.run
        inflight = lane.inflight
        if inflight:
            recv_ns: int | None = inflight.popleft()
            produce_ns = inflight.popleft()
        else:
            recv_ns = produce_ns = None
        if err is not None:
            stats.publish_errors[topic] += 1
            run.errors += 1
            log.error("delivery to %s failed: %s", topic, err)
            return
        stats.published[topic] += 1
        run.acked += 1
        offset = msg.offset()
        if run.first_offset is None:
            run.first_offset = offset
        run.last_offset = offset
        if recv_ns is None:
            return
        # latency(): produce() to the broker's acknowledgement, measured by librdkafka; the
        # report is served later (at the next poll), so the callback's own clock would overstate it.
        latency = msg.latency()
        ack_ns = produce_ns + int(latency * 1e9) if latency is not None else _time_ns()
        pending = stats.pending_latency
        pending.append((ack_ns - recv_ns) / 1e9)
        if len(pending) >= SETTLE_EVERY:
            stats.settle()
        acks = run.ack_ns
        if len(acks) < ACK_TIMES_CAP:
            acks.append(ack_ns)

    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (bounded by ``timeout``)."""
        left = self.flush(timeout)
        if left:
            log.warning("%d records not acknowledged at shutdown", left)
