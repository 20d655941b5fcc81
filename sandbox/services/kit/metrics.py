"""Prometheus metrics with one registry per app.

``http_requests_total{service,method,route,status}`` and
``http_request_duration_seconds{service,method,route}`` are labelled by the
route *template* (``/v1/users/{username}``), never the raw path, so label
cardinality stays bounded; unmatched paths share ``<unmatched>``. The process
collector adds ``process_cpu_seconds_total`` and ``process_resident_memory_bytes``
(read from /proc at scrape time), which dashboards set against the budget.
Services add their own counters with :func:`counter`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

UNMATCHED = "<unmatched>"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def route_template(scope: dict[str, Any]) -> str:
    """The matched route's path template from an ASGI scope after routing, else ``<unmatched>``.

    Mounted sub-apps contribute their mount prefix plus their own template.
    """
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    if not path:
        return UNMATCHED
    root = scope.get("root_path", "") or ""
    app_root = scope.get("app_root_path", "") or ""
    # Starlette sets root_path for mounts; the part beyond the app's own root is the mount prefix.
    prefix = root[len(app_root):] if root.startswith(app_root) else ""
    return prefix + path


def method_label(method: str) -> str:
    """The HTTP method, or ``OTHER`` for unknown ones (bounded cardinality)."""
    return method if method in KNOWN_METHODS else "OTHER"


class AppMetrics:
    """The registry of one app plus its HTTP instruments (label children cached)."""

    def __init__(self, service: str) -> None:
        """Create the registry and the standard HTTP instruments."""
        self.service = service
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        self.requests = Counter(
            "http_requests_total", "HTTP requests by route template and status.",
            ["service", "method", "route", "status"], registry=self.registry,
        )
        self.duration = Histogram(
            "http_request_duration_seconds", "HTTP request duration by route template.",
            ["service", "method", "route"], registry=self.registry, buckets=BUCKETS,
        )
        self.custom: dict[str, Any] = {}
        self._req_children: dict[tuple[str, str, int], Any] = {}
        self._dur_children: dict[tuple[str, str], Any] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Record one finished request."""
        key = (method, route, status)
        child = self._req_children.get(key)
        if child is None:
            child = self._req_children[key] = self.requests.labels(self.service, method, route, str(status))
        child.inc()
        dkey = (method, route)
        dchild = self._dur_children.get(dkey)
        if dchild is None:
            dchild = self._dur_children[dkey] = self.duration.labels(self.service, method, route)
        dchild.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """Prometheus text exposition and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def app_metrics(app: FastAPI) -> AppMetrics:
    """The :class:`AppMetrics` of a kit app."""
    return app.state.metrics


def counter(app: FastAPI, name: str, doc: str, labels: Sequence[str] = ()) -> Counter:
    """A counter in the app's registry (created once; the same object on later calls)."""
    m = app_metrics(app)
    existing = m.custom.get(name)
    if existing is None:
        existing = m.custom[name] = Counter(name, doc, list(labels), registry=m.registry)
    return existing


def gauge(app: FastAPI, name: str, doc: str, labels: Sequence[str] = ()) -> Gauge:
    """A gauge in the app's registry (created once)."""
    m = app_metrics(app)
    existing = m.custom.get(name)
    if existing is None:
        existing = m.custom[name] = Gauge(name, doc, list(labels), registry=m.registry)
    return existing


def histogram(app: FastAPI, name: str, doc: str, labels: Sequence[str] = (), buckets: Sequence[float] = BUCKETS) -> Histogram:
    """A histogram in the app's registry (created once)."""
    m = app_metrics(app)
    existing = m.custom.get(name)
    if existing is None:
        existing = m.custom[name] = Histogram(name, doc, list(labels), registry=m.registry, buckets=buckets)
    return existing
