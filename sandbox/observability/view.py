"""``aether-sandbox metrics``: the sandbox's key figures, from Prometheus when it runs, else from /metrics.

With Prometheus running, every figure is the very query the dashboards use
(the recording rules of :mod:`.rules`). Without it, each running component's
``/metrics`` is scraped twice, ``interval`` seconds apart: rates come from the
difference, p99 latency from the histogram buckets gained in between (``None``
when no request arrived), and CPU/memory from the runtime's own accounting.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from sandbox.runtimes.base import SandboxStatus

#: The Prometheus queries behind each figure (the dashboards' own expressions).
QUERIES = {
    "requests_per_s": "component:http_requests:rate1m",
    "error_ratio": "component:http_errors:ratio_rate5m",
    "p99_s": "component:http_latency_seconds:p99_5m",
    "cpu_m": "component:cpu_millicores",
    "memory_bytes": "component:memory_bytes",
}
INGEST_QUERIES = {
    "records_per_s": "sum(rate(ingest_records_published_total[1m]))",
    "frames_per_s": "sum(rate(ingest_frames_received_total[1m]))",
    "publish_p99_s": "histogram_quantile(0.99, sum by (le) (rate(ingest_publish_latency_seconds_bucket[1m])))",
    "feed_lag_s": "max(ingest_feed_lag_seconds)",
    "checksums_verified": "sum(ingest_checksums_verified_total)",
    "checksums_failed": "sum(ingest_checksums_failed_total)",
}
OMS_QUERIES = {
    "orders": "sum(oms_orders_total)",
    "orders_per_s": "sum(rate(oms_orders_total[1m]))",
    "rejected": "sum(oms_rejections_total)",
    "fills": "sum(oms_fills_total)",
    "reconciliation_differences": "sum(oms_reconciliation_differences_total)",
}


@dataclass
class ComponentFigures:
    """One component's figures (None: not measured)."""

    component: str
    requests_per_s: float | None = None
    error_ratio: float | None = None
    p99_s: float | None = None
    cpu_m: float | None = None
    cpu_limit_m: int | None = None
    memory_mib: float | None = None
    memory_limit_mib: int | None = None


@dataclass
class MetricsView:
    """What ``metrics`` prints."""

    sandbox: str
    source: str
    """``prometheus`` or ``direct``."""
    prometheus_url: str | None
    components: list[ComponentFigures] = field(default_factory=list)
    ingest: dict[str, float | None] = field(default_factory=dict)
    oms: dict[str, float | None] = field(default_factory=dict)
    alerts: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)


def _num(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) or math.isinf(f) else f


def _base(status: SandboxStatus) -> dict[str, ComponentFigures]:
    figures = {}
    for c in status.components:
        if c.state == "unavailable":
            continue
        figures[c.name] = ComponentFigures(
            c.name, cpu_m=c.usage.cpu_m, cpu_limit_m=c.usage.cpu_limit_m,
            memory_mib=c.usage.memory_mib, memory_limit_mib=c.usage.memory_limit_mib,
        )
    return figures


def prometheus_url(status: SandboxStatus) -> str | None:
    """The URL of the sandbox's Prometheus when it runs healthy."""
    for c in status.components:
        if c.name == "prometheus" and c.state == "running" and c.port:
            return c.url or f"http://127.0.0.1:{c.port}"
    return None


class Prometheus:
    """Instant queries against one Prometheus."""

    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url.rstrip("/")
        self.client = client

    def query(self, expr: str) -> list[dict[str, Any]]:
        """The instant vector of ``expr`` now (raises on HTTP or query errors)."""
        resp = self.client.get(f"{self.url}/api/v1/query", params={"query": expr})
        resp.raise_for_status()
        body = resp.json()
        if body.get("status") != "success":
            raise RuntimeError(f"{expr}: {body.get('error')}")
        return body["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        """The single value of ``expr`` (None when empty)."""
        result = self.query(expr)
        return _num(result[0]["value"][1]) if result else None


def from_prometheus(status: SandboxStatus, url: str, client: httpx.Client) -> MetricsView:
    """Every figure from the sandbox's Prometheus."""
    prom = Prometheus(url, client)
    figures = _base(status)
    for key, expr in QUERIES.items():
        for row in prom.query(expr):
            name = row["metric"].get("component")
            if name not in figures:
                continue
            value = _num(row["value"][1])
            if key == "memory_bytes":
                figures[name].memory_mib = None if value is None else round(value / 2**20, 1)
            else:
                setattr(figures[name], key, value)
    view = MetricsView(status.name, "prometheus", url, list(figures.values()))
    view.ingest = {k: prom.scalar(e) for k, e in INGEST_QUERIES.items()}
    view.oms = {k: prom.scalar(e) for k, e in OMS_QUERIES.items()}
    view.alerts = [
        {"alert": r["metric"].get("alertname", ""), "component": r["metric"].get("component", ""),
         "severity": r["metric"].get("severity", "")}
        for r in prom.query('ALERTS{alertstate="firing"}')
    ]
    return view


def scrape(client: httpx.Client, url: str) -> dict[str, float]:
    """One ``/metrics`` scrape flattened to ``{sample name + sorted labels: value}``."""
    resp = client.get(url.rstrip("/") + "/metrics")
    resp.raise_for_status()
    flat: dict[str, float] = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            key = s.name + "|" + ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            flat[key] = s.value
    return flat


def _sum(flat: dict[str, float], name: str, where: str = "") -> float:
    return sum(v for k, v in flat.items() if k.split("|", 1)[0] == name and where in k)


def _p99(before: dict[str, float], after: dict[str, float]) -> float | None:
    """p99 from the HTTP duration buckets gained between two scrapes (upper bound of the bucket)."""
    gained: dict[float, float] = {}
    for key, value in after.items():
        if not key.startswith("http_request_duration_seconds_bucket|"):
            continue
        le = next(part[3:] for part in key.split("|", 1)[1].split(",") if part.startswith("le="))
        bound = math.inf if le == "+Inf" else float(le)
        gained[bound] = gained.get(bound, 0.0) + value - before.get(key, 0.0)
    total = gained.get(math.inf, 0.0)
    if total <= 0:
        return None
    for bound in sorted(gained):
        if gained[bound] >= 0.99 * total:
            return bound
    return None


def direct(status: SandboxStatus, client: httpx.Client, interval: float = 1.0) -> MetricsView:
    """Figures from each running component's ``/metrics`` (two scrapes) and the runtime's accounting."""
    figures = _base(status)
    urls = {c.name: c.url for c in status.components if c.state == "running" and c.url}
    first: dict[str, dict[str, float]] = {}
    for name, url in urls.items():
        try:
            first[name] = scrape(client, url)
        except (httpx.HTTPError, ValueError):
            continue  # no Prometheus text there (e.g. nothing on /metrics)
    time.sleep(interval)
    second = {}
    for name in first:
        try:
            second[name] = scrape(client, urls[name])
        except (httpx.HTTPError, ValueError):
            continue
    view = MetricsView(status.name, "direct", None, list(figures.values()))
    for name, after in second.items():
        before = first[name]
        if not any(k.startswith("http_requests_total|") for k in after):
            continue
        f = figures[name]
        total = _sum(after, "http_requests_total") - _sum(before, "http_requests_total")
        errors = _sum(after, "http_requests_total", "status=5") - _sum(before, "http_requests_total", "status=5")
        f.requests_per_s = round(total / interval, 3)
        f.error_ratio = (errors / total) if total > 0 else None
        f.p99_s = _p99(before, after)
    ingest = next((second[n] for n in second if any(k.startswith("ingest_") for k in second[n])), None)
    if ingest is not None:
        name = next(n for n in second if second[n] is ingest)
        view.ingest = {
            "records_per_s": round((_sum(ingest, "ingest_records_published_total")
                                    - _sum(first[name], "ingest_records_published_total")) / interval, 3),
            "frames_per_s": round((_sum(ingest, "ingest_frames_received_total")
                                   - _sum(first[name], "ingest_frames_received_total")) / interval, 3),
            "feed_lag_s": ingest.get("ingest_feed_lag_seconds|"),
            "checksums_verified": _sum(ingest, "ingest_checksums_verified_total"),
            "checksums_failed": _sum(ingest, "ingest_checksums_failed_total"),
        }
    if "oms-service" in second:
        oms = second["oms-service"]
        view.oms = {
            "orders": _sum(oms, "oms_orders_total"),
            "rejected": _sum(oms, "oms_rejections_total"),
            "fills": _sum(oms, "oms_fills_total"),
            "reconciliation_differences": _sum(oms, "oms_reconciliation_differences_total"),
        }
    view.notes.append(
        f"Prometheus is not running in this sandbox: figures scraped directly from /metrics over {interval:g} s "
        "(no alerts evaluated); `aether-sandbox up --profile observability` runs Prometheus and Alertmanager"
    )
    return view


def collect(status: SandboxStatus, *, interval: float = 1.0, timeout: float = 5.0) -> MetricsView:
    """The view: from Prometheus when it runs, else direct."""
    with httpx.Client(timeout=timeout) as client:
        url = prometheus_url(status)
        if url:
            try:
                return from_prometheus(status, url, client)
            except (httpx.HTTPError, RuntimeError) as exc:
                view = direct(status, client, interval)
                view.notes.insert(0, f"Prometheus at {url} did not answer ({exc}); scraped directly instead")
                return view
        return direct(status, client, interval)
