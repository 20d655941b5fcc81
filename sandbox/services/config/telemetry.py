"""config-service's own Prometheus counters (registered in the app's kit registry)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI

from sandbox.services.kit.metrics import counter

READ_SOURCES = ("memory", "disk", "database", "not_modified")


@dataclass
class ConfigMetrics:
    """Label children resolved once, so the read path only increments."""

    reads: dict[str, Any]
    writes: Any
    notifications: Any
    syncs: Any

    def write(self, op: str, outcome: str) -> None:
        """Count a write attempt (``outcome``: committed, conflict)."""
        self.writes.labels(op, outcome).inc()

    def notification(self, direction: str, outcome: str) -> None:
        """Count a NATS notification (published/failed, received/ignored)."""
        self.notifications.labels(direction, outcome).inc()

    def sync(self, outcome: str) -> None:
        """Count a catch-up with the database (ok, failed)."""
        self.syncs.labels(outcome).inc()


def create_metrics(app: FastAPI | None) -> ConfigMetrics:
    """The counters of ``app`` (or free-standing ones, for tests, when ``app`` is None)."""
    if app is None:
        from prometheus_client import CollectorRegistry, Counter

        registry = CollectorRegistry()

        def make(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return Counter(name, doc, list(labels), registry=registry)
    else:
        def make(name: str, doc: str, labels: tuple[str, ...]) -> Any:
            return counter(app, name, doc, labels)

    reads = make("config_reads_total", "Key reads by where the body came from.", ("source",))
    return ConfigMetrics(
        reads={source: reads.labels(source) for source in READ_SOURCES},
        writes=make("config_writes_total", "Writes by operation and outcome.", ("op", "outcome")),
        notifications=make(
            "config_notifications_total", "Change notifications by direction and outcome.", ("direction", "outcome")
        ),
        syncs=make("config_index_syncs_total", "Catch-ups of the version index with the database.", ("outcome",)),
    )
