"""``/metrics`` of the venue simulator: its HTTP traffic and the market-data replay.

HTTP requests use the kit's instruments (``http_requests_total``,
``http_request_duration_seconds`` with ``service="kraken-venue"``) and process
CPU/memory; the replay is read from the running WebSocket server's counters at
scrape time (``venue_replay_*``), so replaying costs nothing extra. The replay
counters restart when another session is loaded (a new server): ``rate()``
handles such resets.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from sandbox.services.kit.metrics import AppMetrics


class ReplayCollector:
    """Exports the stats of the controller's current replay server (nothing while idle)."""

    def __init__(self, server: Callable[[], Any], executions_connections: Callable[[], int]) -> None:
        """``server()`` is the current ``KrakenWsServer`` or None."""
        self.server = server
        self.executions_connections = executions_connections

    def collect(self) -> Iterator[Any]:
        """The replay's counters now."""
        server = self.server()
        yield GaugeMetricFamily("venue_replay_active", "1 while a market-data session is loaded.", value=int(server is not None))
        yield GaugeMetricFamily(
            "venue_executions_connections", "Open private executions WebSocket connections.",
            value=self.executions_connections(),
        )
        if server is None:
            return
        s = server.stats
        yield CounterMetricFamily("venue_replay_frames_played", "Recorded frames played by the current replay.",
                                  value=s.frames_played)
        yield CounterMetricFamily("venue_replay_frames_sent", "Frames written to market-data clients.", value=s.frames_sent)
        yield CounterMetricFamily("venue_replay_loops", "Completed loops of the session.", value=s.loops_completed)
        yield CounterMetricFamily("venue_replay_checksum_mismatches", "Recorded checksums that did not verify.",
                                  value=s.checksum_mismatches)
        yield GaugeMetricFamily("venue_replay_clients", "Connected market-data clients.", value=s.clients)
        yield GaugeMetricFamily("venue_replay_lag_seconds", "Worst delay behind the paced schedule.", value=s.max_lag_s)


def venue_metrics(server: Callable[[], Any], executions_connections: Callable[[], int]) -> AppMetrics:
    """The venue's registry: kit HTTP instruments, process metrics and the replay collector."""
    metrics = AppMetrics("kraken-venue")
    metrics.registry.register(ReplayCollector(server, executions_connections))  # type: ignore[arg-type]
    return metrics
