"""What the ingest counts, kept in plain integers (the hot path must not pay for labels).

:class:`Stats` is the single record; ``/metrics`` exports it through a
collector at scrape time (:mod:`sandbox.ingest.metrics`) and ``/stats`` as
JSON.  :class:`RunStats` is the part that belongs to one run (the ingest's
start, or a replay started through ``POST /subscriptions``): per topic the
sequence numbers and Kafka offsets of the records it published, so the replay
verifier reads exactly that run's records back from Kafka.
"""

from __future__ import annotations

import time
from array import array
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

#: Upper bounds (seconds) of the latency histograms.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """A cumulative-bucket histogram in plain lists; also keeps an exact sample for percentiles."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS, sample_cap: int = 200_000) -> None:
        self.buckets = buckets
        self.counts = [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0
        self.sample: list[float] = []
        self.sample_cap = sample_cap
        #: the first ``len(_ordered)`` values of ``sample``, sorted (``sample`` only ever grows at its end)
        self._ordered: list[float] = []

    def observe(self, value: float) -> None:
        """Add one observation (seconds)."""
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1
        if len(self.sample) < self.sample_cap:
            self.sample.append(value)

    def percentiles(self, qs: tuple[float, ...] = (0.5, 0.9, 0.99, 1.0)) -> dict[str, float | None]:
        """Exact percentiles of the kept sample (seconds), keyed ``p50``, ``p90``, ``p99``, ``max``.

        ``/stats`` asks for them many times a second while a replay is verified: the values added
        since the last call are sorted and merged into the sorted rest (two sorted runs: a linear
        merge), instead of sorting up to ``sample_cap`` values each time.
        """
        ordered, sample = self._ordered, self.sample
        if len(ordered) != len(sample):
            fresh = sample[len(ordered):]
            fresh.sort()
            ordered += fresh
            ordered.sort()
        return ranked(ordered, qs)


def observe_all(histograms: tuple[Histogram, ...], values: list[float]) -> None:
    """Add ``values`` (in arrival order) to every histogram of ``histograms`` (same buckets), in bulk.

    The same result as ``h.observe(v)`` for each value and histogram: each bucket counts the
    values above the previous bound and at or below its own (``bisect_left`` of the value);
    the sum is accumulated left to right; the sample keeps the first values, in order.  One
    sort of the batch replaces a bucket search per value and histogram.
    """
    if not values:
        return
    ordered = sorted(values)
    n = len(ordered)
    for histogram in histograms:
        below = 0
        counts = histogram.counts
        for index, bound in enumerate(histogram.buckets):
            upto = bisect_right(ordered, bound)
            counts[index] += upto - below
            below = upto
        counts[-1] += n - below
        histogram.sum = sum(values, histogram.sum)
        histogram.count += n
        room = histogram.sample_cap - len(histogram.sample)
        if room > 0:
            histogram.sample.extend(values[:room])


def percentiles(values: list[float], qs: tuple[float, ...] = (0.5, 0.9, 0.99, 1.0)) -> dict[str, float | None]:
    """Nearest-rank percentiles of ``values`` keyed ``p50``/``p90``/``p99``/``max``."""
    return ranked(sorted(values), qs)


def ranked(ordered: list[float], qs: tuple[float, ...] = (0.5, 0.9, 0.99, 1.0)) -> dict[str, float | None]:
    """:func:`percentiles` of values already sorted."""
    out: dict[str, float | None] = {}
    for q in qs:
        key = "max" if q == 1.0 else f"p{round(q * 100)}"
        if not ordered:
            out[key] = None
            continue
        rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 1))))
        out[key] = ordered[rank - 1]
    return out


#: Acknowledgement times kept per topic and run (8 bytes each) for end-to-end latency joins.
ACK_TIMES_CAP = 2_000_000


@dataclass
class TopicRun:
    """One topic's records within one run."""

    first_seq: int | None = None
    last_seq: int | None = None
    produced: int = 0
    acked: int = 0
    errors: int = 0
    first_offset: int | None = None
    last_offset: int | None = None
    #: broker acknowledgement time (epoch ns) of each acknowledged record, in sequence order
    ack_ns: array = field(default_factory=lambda: array("q"))
    #: the frame each record came from (``connection serial << 32 | frame number``), in sequence order
    frame_ref: array = field(default_factory=lambda: array("q"))

    def add_ack(self, ack_ns: int) -> None:
        """Keep one acknowledgement time (up to :data:`ACK_TIMES_CAP`)."""
        if len(self.ack_ns) < ACK_TIMES_CAP:
            self.ack_ns.append(ack_ns)

    def add_frame(self, ref: int) -> None:
        """Keep one record's frame reference (up to :data:`ACK_TIMES_CAP`)."""
        if len(self.frame_ref) < ACK_TIMES_CAP:
            self.frame_ref.append(ref)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (without the per-record arrays: ``GET /acks`` serves those)."""
        return {k: v for k, v in self.__dict__.items() if k not in ("ack_ns", "frame_ref")}


@dataclass
class RunStats:
    """Counters of one run (reset by ``POST /subscriptions``)."""

    run: str
    started: float = field(default_factory=time.time)
    frames: int = 0
    data_frames: int = 0
    first_frame_ns: int | None = None
    last_frame_ns: int | None = None
    checksums_verified: int = 0
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
    topics: dict[str, TopicRun] = field(default_factory=lambda: defaultdict(TopicRun))
    #: connection serial -> the venue's connection id (from its greeting), for connections in this run
    connections: dict[int, int | None] = field(default_factory=dict)
    latency: Histogram = field(default_factory=Histogram)
    """Frame taken off the WebSocket to broker acknowledgement, per record."""

    def data_frame(self, recv_ns: int) -> None:
        """Count a frame that produced records, received at ``recv_ns``."""
        self.data_frames += 1
        if self.first_frame_ns is None:
            self.first_frame_ns = recv_ns
        self.last_frame_ns = recv_ns

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with latency percentiles in milliseconds."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("topics", "latency")}
        out["topics"] = {t: r.as_dict() for t, r in sorted(self.topics.items())}
        out["records_produced"] = sum(r.produced for r in self.topics.values())
        out["records_acked"] = sum(r.acked for r in self.topics.values())
        out["latency_ms"] = {k: (None if v is None else round(v * 1000, 3)) for k, v in self.latency.percentiles().items()}
        out["latency_ms"]["count"] = self.latency.count
        return out


@dataclass
class Stats:
    """Totals for the life of the process, plus the current run."""

    run: RunStats
    frames: int = 0
    invalid_frames: int = 0
    checksums_verified: int = 0
    checksums_failed: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    crossed: int = 0
    gaps: int = 0
    missing: int = 0
    out_of_order: int = 0
    dropped: int = 0
    reconnects: int = 0
    resubscribes: int = 0
    produced: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    published: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    publish_errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    latency: Histogram = field(default_factory=lambda: Histogram(sample_cap=0))
    connected: bool = False
    subscribed: bool = False
    feed_lag_s: float | None = None
    """Receive time minus the latest exchange timestamp (meaningful live; a replay's timestamps are old)."""
    producer_queue: int = 0
    detail: str = "starting"
    #: publish latencies (seconds) of the current run not yet in ``latency`` and ``run.latency``:
    #: a delivery report appends (once per record), :meth:`settle` sorts them into both in bulk
    pending_latency: array = field(default_factory=lambda: array("d"))

    def settle(self) -> None:
        """Move the pending latencies into the run's and the process's histograms (before reading them)."""
        pending = self.pending_latency
        if pending:
            values = pending.tolist()
            del pending[:]
            observe_all((self.run.latency, self.latency), values)

    def new_run(self, run: str) -> RunStats:
        """Start run ``run`` (the pending latencies are the old run's: settled first)."""
        self.settle()
        self.run = RunStats(run)
        return self.run
