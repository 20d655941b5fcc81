"""The ingest's publisher against a real broker: every record's delivery counted in the run it belongs to."""

from __future__ import annotations

import time
import uuid

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.ingest.publisher import Publisher
from sandbox.ingest.stats import RunStats, Stats


def test_deliveries_are_counted_per_topic_and_run(kafka_broker: EmbeddedKafka) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = [f"test.publisher.{tag}.a", f"test.publisher.{tag}.b"]
    stats = Stats(run=RunStats("first"))
    publisher = Publisher(kafka_broker.bootstrap, stats, linger_ms=5)
    publisher.ensure_topics(topics)
    a, b = topics
    for seq in range(1, 301):  # more than POLL_EVERY: reports are also served on the hot path
        publisher.produce(a, b"A", b'{"n":%d}' % seq, 1_000 + seq, seq, frame_ref=seq)
    publisher.produce(b, b"B", b"{}", 5, 1, frame_ref=7)
    assert publisher.flush(10) == 0
    first = stats.run
    between_ns = time.time_ns()
    stats.new_run("second")  # the publisher's per-topic references must follow the new run
    for seq in range(301, 311):
        publisher.produce(a, b"A", b"{}", 2_000 + seq, seq, frame_ref=seq)
    assert publisher.flush(10) == 0
    second = stats.run
    stats.settle()

    ra, rb = first.topics[a], first.topics[b]
    assert (ra.produced, ra.acked, ra.errors, ra.first_seq, ra.last_seq) == (300, 300, 0, 1, 300)
    assert (ra.first_offset, ra.last_offset) == (0, 299)
    assert list(ra.frame_ref) == list(range(1, 301)) and len(ra.ack_ns) == 300
    assert (rb.produced, rb.acked, rb.first_seq, rb.last_seq, rb.first_offset, rb.last_offset) == (1, 1, 1, 1, 0, 0)
    r2 = second.topics[a]
    assert (r2.produced, r2.acked, r2.first_seq, r2.last_seq, r2.first_offset, r2.last_offset) == (10, 10, 301, 310, 300, 309)
    assert b not in second.topics
    assert list(r2.frame_ref) == list(range(301, 311))
    # An ack time is the record's produce time plus librdkafka's measured latency (µs clock): records acknowledged
    # together may differ by a microsecond of jitter, so the runs bracket them rather than requiring them sorted.
    assert between_ns <= min(r2.ack_ns) and max(ra.ack_ns) <= between_ns + 1_000_000
    assert (stats.produced[a], stats.published[a], stats.produced[b], stats.published[b]) == (310, 310, 1, 1)
    assert (first.latency.count, second.latency.count, stats.latency.count) == (301, 10, 311)
    assert all(v > 0 for v in first.latency.sample)  # frame receipt (epoch ns 1_000...) long before the ack
    publisher.close()
