"""Verifying a replay that went through the platform: Kafka counted by consuming, latency joined per record.

* :func:`expected_counts` - the records each topic must receive, from the
  fixture's manifest (``symbol_counts``: data frames per channel and symbol;
  the ingest publishes one record per data frame and symbol).
* :func:`consume_run` - reads one ingest run's records back from Kafka,
  starting at the offsets the ingest's delivery reports gave for the run's
  first record, and checks that each topic's sequence numbers are contiguous.
  Counting is by consuming, never by watermarks (Tansu's high watermark is the
  last batch's base offset + 1).  Partitions are assigned, not joined through a
  consumer group, so no group join delay.
* :func:`end_to_end` - per record, the venue's send time of the frame it came
  from (``GET /admin/replay/sends``) to the broker's acknowledgement of its
  append (``GET /acks`` of the ingest).  All processes read the same host
  clock (``CLOCK_REALTIME``), so the difference is a latency, not a skew.
* :class:`ReplayReport` - everything the ``replay`` command prints, and the
  verdict: :meth:`ReplayReport.failures` lists what was lost, reordered or
  failed verification.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.ingest.normalise import topic_for
from sandbox.ingest.stats import percentiles


def expected_counts(symbol_counts: Mapping[str, Mapping[str, int]], channels: Iterable[str], symbols: Iterable[str],
                    prefix: str = "kraken") -> dict[str, int]:
    """Records each topic must receive: the manifest's data frames per channel and symbol."""
    wanted = set(symbols)
    out: dict[str, int] = {}
    for channel in channels:
        for symbol, count in (symbol_counts.get(channel) or {}).items():
            if symbol in wanted:
                out[topic_for(prefix, channel, symbol)] = int(count)
    return dict(sorted(out.items()))


@dataclass
class TopicCount:
    """What consuming one topic found."""

    topic: str
    expected: int | None = None
    acked: int = 0
    consumed: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    #: sequence numbers skipped (records lost between the ingest and Kafka)
    seq_gaps: int = 0
    #: records whose sequence number went back (reordered or duplicated)
    seq_back: int = 0
    snapshots: int = 0

    @property
    def complete(self) -> bool:
        """True when every acknowledged record was read back, in order, and the count is the expected one."""
        return (
            self.consumed == self.acked
            and not self.seq_gaps
            and not self.seq_back
            and (self.expected is None or self.consumed == self.expected)
        )


def consume_run(
    bootstrap: str,
    topics: Mapping[str, Mapping[str, Any]],
    run: str,
    *,
    expected: Mapping[str, int] | None = None,
    timeout: float = 60.0,
) -> dict[str, TopicCount]:
    """Read back the records of ingest run ``run`` from each of ``topics``.

    ``topics`` is the run's per-topic report from the ingest (``first_offset``,
    ``last_offset``, ``acked``).  Stops when every topic has yielded its
    acknowledged count (and reached its last offset), or at ``timeout``.
    """
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    expected = expected or {}
    counts = {t: TopicCount(t, expected.get(t), int(info.get("acked") or 0)) for t, info in topics.items()}
    for topic, count in expected.items():
        counts.setdefault(topic, TopicCount(topic, count))
    live = {t: info for t, info in topics.items() if info.get("first_offset") is not None}
    if not live:
        return dict(sorted(counts.items()))
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"aether-replay-verify-{uuid.uuid4().hex[:8]}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": True,
        "fetch.min.bytes": 1,
    })
    try:
        metadata = consumer.list_topics(timeout=10.0).topics
        assignment = []
        for topic, info in live.items():
            partitions = sorted(metadata[topic].partitions) if topic in metadata else [0]
            # One symbol per topic and the symbol as key: the ingest's records sit in one partition;
            # reading every partition from its start only where there are several keeps this honest.
            start = int(info["first_offset"]) if len(partitions) == 1 else 0
            assignment += [TopicPartition(topic, p, start) for p in partitions]
        consumer.assign(assignment)
        last_offset = {t: int(info.get("last_offset") or -1) for t, info in live.items()}
        reached: dict[str, int] = {t: -1 for t in live}
        prev: dict[str, int] = {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(counts[t].consumed >= counts[t].acked and reached[t] >= last_offset[t] for t in live):
                break
            for msg in consumer.consume(num_messages=10_000, timeout=0.2):
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        raise RuntimeError(f"reading {msg.topic()}: {msg.error()}")
                    continue
                topic = msg.topic()
                reached[topic] = max(reached[topic], msg.offset())
                _count(counts[topic], msg.value(), run, prev)
    finally:
        consumer.close()
    return dict(sorted(counts.items()))


def _count(count: TopicCount, value: bytes, run: str, prev: dict[str, int]) -> None:
    try:
        record = json.loads(value)
    except ValueError:
        return
    if not isinstance(record, dict) or record.get("run") != run:
        return
    seq = record.get("seq")
    count.consumed += 1
    if record.get("type") == "snapshot":
        count.snapshots += 1
    if not isinstance(seq, int):
        return
    last = prev.get(count.topic)
    if last is not None:
        if seq <= last:
            count.seq_back += 1
            return
        count.seq_gaps += seq - last - 1
    else:
        count.first_seq = seq
    prev[count.topic] = seq
    count.last_seq = seq


def end_to_end(acks: Mapping[str, Mapping[str, Any]], sends: Mapping[int, list[int]]) -> dict[str, Any]:
    """Per-record latency from the venue's send to the broker's acknowledgement.

    ``acks`` maps each topic to the ingest's ``GET /acks`` answer (``ack_ns``,
    ``frame_ref``, ``connections``); ``sends`` maps a venue connection id to
    its send times.  Returns percentiles in milliseconds, the records joined,
    those that could not be, and the first send and last acknowledgement.
    """
    values: list[float] = []
    unjoined = 0
    first_send: int | None = None
    last_ack: int | None = None
    for answer in acks.values():
        connections = {int(k): v for k, v in (answer.get("connections") or {}).items()}
        for ack_ns, ref in zip(answer.get("ack_ns") or (), answer.get("frame_ref") or (), strict=False):
            conn = connections.get(ref >> 32)
            frame_no = ref & 0xFFFFFFFF
            times = sends.get(conn) if conn is not None else None
            if not times or not 0 < frame_no <= len(times):
                unjoined += 1
                continue
            sent = times[frame_no - 1]
            values.append((ack_ns - sent) / 1e6)
            first_send = sent if first_send is None else min(first_send, sent)
            last_ack = ack_ns if last_ack is None else max(last_ack, ack_ns)
    out: dict[str, Any] = {k: (None if v is None else round(v, 3)) for k, v in percentiles(values).items()}
    out.update(joined=len(values), unjoined=unjoined, first_send_ns=first_send, last_ack_ns=last_ack)
    return out


@dataclass
class ReplayReport:
    """The outcome of one replay through the platform."""

    session: str
    api: str
    run: str
    speed: float | None
    symbols: list[str]
    channels: list[str]
    depth: int | None
    #: session frames the venue played, and frames it sent on the ingest's connection(s)
    frames_played: int = 0
    frames_sent: int = 0
    frames_received: int = 0
    data_frames_received: int = 0
    topics: dict[str, TopicCount] = field(default_factory=dict)
    checksums_verified: int = 0
    checksums_expected: int | None = None
    checksums_failed: int = 0
    crossed: int = 0
    gaps: int = 0
    missing: int = 0
    out_of_order: int = 0
    dropped: int = 0
    resubscribes: int = 0
    resyncs_completed: int = 0
    reconnects: int = 0
    invalid_frames: int = 0
    publish_errors: int = 0
    venue_checksum_mismatches: int = 0
    #: end-to-end latency, venue send -> broker ack (ms percentiles + join counts)
    latency: dict[str, Any] = field(default_factory=dict)
    #: ingest-internal: frame taken off the socket -> broker ack (ms percentiles)
    ingest_latency: dict[str, Any] = field(default_factory=dict)
    session_duration_s: float = 0.0
    replay_duration_s: float | None = None
    requested_rate: float | None = None
    achieved_rate: float | None = None
    end_to_end_rate: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def records_expected(self) -> int:
        """Records the manifest says the topics must receive."""
        return sum(t.expected or 0 for t in self.topics.values())

    @property
    def records_consumed(self) -> int:
        """Records read back from Kafka."""
        return sum(t.consumed for t in self.topics.values())

    def failures(self) -> list[str]:
        """What was lost, reordered or failed verification (empty: the replay verified)."""
        out = []
        for t in self.topics.values():
            if t.expected is not None and t.consumed != t.expected:
                out.append(f"{t.topic}: consumed {t.consumed} records, the session has {t.expected}")
            if t.consumed != t.acked:
                out.append(f"{t.topic}: the broker acknowledged {t.acked}, {t.consumed} read back")
            if t.seq_gaps:
                out.append(f"{t.topic}: {t.seq_gaps} sequence numbers missing")
            if t.seq_back:
                out.append(f"{t.topic}: {t.seq_back} records out of sequence")
        checks = (
            (self.checksums_failed, "book checksums failed"),
            (self.crossed, "crossed books"),
            (self.gaps, "trade-id gaps"),
            (self.out_of_order, "items out of order"),
            (self.dropped, "book updates dropped while resynchronising"),
            (self.reconnects, "reconnects during the replay"),
            (self.invalid_frames, "frames that were not JSON"),
            (self.publish_errors, "records the producer failed to deliver"),
        )
        out += [f"{n} {what}" for n, what in checks if n]
        if self.checksums_expected is not None and self.checksums_verified != self.checksums_expected and not self.checksums_failed:
            out.append(f"{self.checksums_verified} checksums verified, the session has {self.checksums_expected}")
        return out

    @property
    def ok(self) -> bool:
        """True when nothing was lost, reordered or failed verification."""
        return not self.failures()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with the verdict."""
        data = asdict(self)
        data["topics"] = {k: {**asdict(v), "complete": v.complete} for k, v in self.topics.items()}
        data.update(records_expected=self.records_expected, records_consumed=self.records_consumed,
                    ok=self.ok, failures=self.failures())
        return data
