"""The sandbox's own exporter: every component's state and budget accounting as Prometheus metrics.

The local supervisor already measures each component (cgroup accounting, or the
process tree where budgets are measured only) and writes it to ``status.json``
twice a second. This exporter serves that document on ``/metrics``, so
Prometheus sees CPU and memory for every component, the infrastructure
(PostgreSQL, Kafka, NATS, Redis) included, which have no Prometheus exporter
installable here:

``aether_component_up{component}`` (1 running and healthy, else 0; components
unavailable on this machine are left out), ``aether_component_cpu_millicores``,
``aether_component_memory_bytes``, ``aether_component_restarts``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from sandbox.observability.background_http import BackgroundHTTPServer, QuietHandler


def read_status(path: Path) -> dict[str, Any]:
    """The supervisor's last status document ({} when absent or half-written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


class StatusCollector:
    """Turns a status document (``SandboxStatus.to_dict()`` shape) into metric families."""

    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Any]:
        """The families now."""
        up = GaugeMetricFamily("aether_component_up", "1 while the component runs and is healthy.", labels=["component"])
        cpu = GaugeMetricFamily("aether_component_cpu_millicores", "CPU used (sandbox accounting), millicores.",
                                labels=["component"])
        mem = GaugeMetricFamily("aether_component_memory_bytes", "Memory in use (sandbox accounting), bytes.",
                                labels=["component"])
        restarts = CounterMetricFamily("aether_component_restarts", "Restarts by the supervisor.", labels=["component"])
        for c in self.status().get("components", []):
            if c.get("state") == "unavailable":
                continue
            name = c["name"]
            up.add_metric([name], 1.0 if c.get("state") == "running" and c.get("health") == "healthy" else 0.0)
            restarts.add_metric([name], float(c.get("restarts") or 0))
            usage = c.get("usage") or {}
            if usage.get("cpu_m") is not None:
                cpu.add_metric([name], float(usage["cpu_m"]))
            if usage.get("memory_mib") is not None:
                mem.add_metric([name], float(usage["memory_mib"]) * 2**20)
        yield from (up, cpu, mem, restarts)


class StatusExporter(BackgroundHTTPServer):
    """``GET /metrics`` on ``127.0.0.1:port`` in a daemon thread; a context manager."""

    def __init__(self, status_json: Path, port: int, host: str = "127.0.0.1") -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatusCollector(lambda: read_status(status_json)))  # type: ignore[arg-type]
        registry = self.registry

        class Handler(QuietHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                self.reply(200, CONTENT_TYPE_LATEST, generate_latest(registry))

        super().__init__(Handler, port, host)

