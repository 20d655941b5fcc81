"""``/metrics``: the ingest's :class:`~sandbox.ingest.stats.Stats` in the Prometheus text format.

A collector reads the plain counters at scrape time, so counting on the hot
path costs an integer increment rather than a labelled-metric lookup.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from sandbox.ingest.stats import Histogram, Stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _counter(name: str, doc: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, value=value)


def _labelled(name: str, doc: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _histogram(name: str, doc: str, h: Histogram) -> HistogramMetricFamily:
    cumulative, running = [], 0
    for bound, count in zip((*map(str, h.buckets), "+Inf"), h.counts, strict=True):
        running += count
        cumulative.append((bound, running))
    return HistogramMetricFamily(name, doc, buckets=cumulative, sum_value=h.sum)


class IngestCollector:
    """Exports one :class:`Stats` (``ingest_*`` metrics)."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Any]:
        """Every metric, read from the counters now."""
        s = self.stats
        s.settle()
        yield _counter("ingest_frames_received", "WebSocket frames received.", s.frames)
        yield _counter("ingest_invalid_frames", "Frames that were not valid Kraken JSON (skipped).", s.invalid_frames)
        yield _labelled("ingest_records_produced", "Records handed to the Kafka producer, per topic.", "topic", s.produced)
        yield _labelled("ingest_records_published", "Records the broker acknowledged, per topic.", "topic", s.published)
        yield _labelled("ingest_publish_errors", "Records the producer failed to deliver, per topic.", "topic", s.publish_errors)
        yield _counter("ingest_checksums_verified", "Book checksums that matched.", s.checksums_verified)
        yield _labelled("ingest_checksums_failed", "Book checksums that did not match, per symbol.", "symbol", s.checksums_failed)
        yield _counter("ingest_crossed_books", "Books found crossed (best bid at or above best ask).", s.crossed)
        yield _counter("ingest_gaps", "Gaps detected (trade-id jumps).", s.gaps)
        yield _counter("ingest_missing_items", "Items missing in the detected gaps.", s.missing)
        yield _counter("ingest_out_of_order", "Items out of order (trade ids or exchange time going back).", s.out_of_order)
        yield _counter("ingest_dropped_updates", "Book updates dropped while waiting for a fresh snapshot.", s.dropped)
        yield _counter("ingest_reconnects", "WebSocket reconnects.", s.reconnects)
        yield _counter("ingest_resubscribes", "Book resubscribes for a fresh snapshot.", s.resubscribes)
        yield _histogram("ingest_publish_latency_seconds", "Frame receive to broker acknowledgement, per record.", s.latency)
        yield GaugeMetricFamily("ingest_connected", "1 while the WebSocket is open.", value=int(s.connected))
        yield GaugeMetricFamily("ingest_subscribed", "1 while every subscription is acknowledged.", value=int(s.subscribed))
        yield GaugeMetricFamily("ingest_producer_queue", "Records waiting for broker acknowledgement.", value=s.producer_queue)
        if s.feed_lag_s is not None:
            yield GaugeMetricFamily(
                "ingest_feed_lag_seconds", "Receive time minus the latest exchange timestamp.", value=s.feed_lag_s
            )


def registry_for(stats: Stats) -> CollectorRegistry:
    """A registry holding the ingest's metrics and its process CPU/memory (nothing global)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(IngestCollector(stats))  # type: ignore[arg-type]
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition of ``registry``."""
    return generate_latest(registry)
