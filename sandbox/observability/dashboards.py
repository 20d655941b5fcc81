"""The Grafana dashboards, generated from the spec and committed under ``observability/grafana/dashboards/``.

One overview, one dashboard per platform service (rate, errors, latency
percentiles, CPU and memory against the budget from the spec), market data
(replay rate, ingest lag, checksum failures, Kafka throughput) and the OMS
(orders by state, reject reasons, fills, reconciliation differences).
Every panel queries Prometheus (data source uid ``prometheus``) except the log
panels (``loki``); the queries are the recording rules of :mod:`.rules` or raw
metrics the components expose, so ``aether-sandbox metrics`` and the alerts see
the same figures.
"""

from __future__ import annotations

from typing import Any

from sandbox.spec.models import Kind, PlatformSpec

#: Data source uids provisioned in Grafana (observability/grafana/provisioning/datasources/).
DATASOURCES = {"prometheus": "prometheus", "loki": "loki", "tempo": "tempo"}

Target = tuple[str, str]
"""(PromQL or LogQL expression, legend)."""


class Board:
    """A dashboard being built: panels placed two per row."""

    def __init__(self, uid: str, title: str, tags: list[str]) -> None:
        self.uid, self.title, self.tags = uid, title, tags
        self.panels: list[dict[str, Any]] = []

    def panel(self, title: str, targets: list[Target], *, unit: str = "short", kind: str = "timeseries",
              source: str = "prometheus", width: int = 12, description: str = "") -> Board:
        """Add one panel."""
        n = len(self.panels)
        x = sum(p["gridPos"]["w"] for p in self.panels) % 24
        y = 8 * (sum(p["gridPos"]["w"] for p in self.panels) // 24)
        ds = {"type": source, "uid": DATASOURCES[source]}
        panel: dict[str, Any] = {
            "id": n + 1, "type": kind, "title": title, "description": description, "datasource": ds,
            "gridPos": {"h": 8, "w": width, "x": x, "y": y},
            "targets": [
                {"refId": chr(ord("A") + i), "datasource": ds, "expr": expr, "legendFormat": legend}
                for i, (expr, legend) in enumerate(targets)
            ],
        }
        if kind != "logs":
            panel["fieldConfig"] = {"defaults": {"unit": unit}, "overrides": []}
        self.panels.append(panel)
        return self

    def to_dict(self) -> dict[str, Any]:
        """The Grafana dashboard JSON model."""
        return {
            "uid": self.uid, "title": self.title, "tags": ["aether", *self.tags], "timezone": "utc",
            "schemaVersion": 39, "version": 1, "editable": True, "refresh": "10s",
            "time": {"from": "now-30m", "to": "now"}, "panels": self.panels,
            "templating": {"list": []}, "annotations": {"list": []},
        }


def _budget_panels(board: Board, name: str) -> None:
    sel = f'component="{name}"'
    board.panel("CPU against budget", [
        (f"component:cpu_millicores{{{sel}}}", "used"),
        (f'aether_budget_cpu_millicores{{{sel},bound="request"}}', "request (spec)"),
        (f'aether_budget_cpu_millicores{{{sel},bound="limit"}}', "limit (spec, enforced)"),
    ], unit="none", description="millicores")
    board.panel("Memory against budget", [
        (f"component:memory_bytes{{{sel}}}", "used"),
        (f'aether_budget_memory_bytes{{{sel},bound="request"}}', "request (spec)"),
        (f'aether_budget_memory_bytes{{{sel},bound="limit"}}', "limit (spec, enforced)"),
    ], unit="bytes")


def overview() -> dict[str, Any]:
    """Every component at a glance."""
    b = Board("aether-overview", "Aether platform overview", ["overview"])
    b.panel("Components up", [("up{job=\"aether\"}", "{{component}} scraped"),
                              ("aether_component_up", "{{component}} running")], width=24)
    b.panel("Request rate", [("component:http_requests:rate1m", "{{component}}")], unit="reqps")
    b.panel("Error ratio (5xx)", [("component:http_errors:ratio_rate5m", "{{component}}")], unit="percentunit")
    b.panel("p99 latency", [("component:http_latency_seconds:p99_5m", "{{component}}")], unit="s")
    b.panel("Firing alerts", [('ALERTS{alertstate="firing"}', "{{alertname}} {{component}}")])
    b.panel("CPU / enforced budget", [(
        'component:cpu_millicores / on (component) aether_budget_cpu_millicores{bound="limit"}', "{{component}}")],
        unit="percentunit")
    b.panel("Memory / enforced budget", [(
        'component:memory_bytes / on (component) aether_budget_memory_bytes{bound="limit"}', "{{component}}")],
        unit="percentunit")
    return b.to_dict()


def service(name: str) -> dict[str, Any]:
    """One platform service: traffic, errors, latency percentiles, budget, logs."""
    sel = f'component="{name}"'
    b = Board(f"aether-{name}", f"Aether {name}", ["service"])
    b.panel("Requests by route", [(f"sum by (route) (rate(http_requests_total{{{sel}}}[1m]))", "{{route}}")],
            unit="reqps")
    b.panel("Responses by status", [(f"sum by (status) (rate(http_requests_total{{{sel}}}[1m]))", "{{status}}")],
            unit="reqps")
    b.panel("Error ratio (5xx)", [(f"component:http_errors:ratio_rate5m{{{sel}}}", "5xx ratio")],
            unit="percentunit")
    b.panel("Latency percentiles", [
        (f"histogram_quantile({q}, sum by (le) (rate(http_request_duration_seconds_bucket{{{sel}}}[5m])))", f"p{p}")
        for q, p in ((0.5, 50), (0.9, 90), (0.99, 99))
    ], unit="s")
    _budget_panels(b, name)
    b.panel("Logs", [(f'{{component="{name}"}}', "")], kind="logs", source="loki", width=24)
    return b.to_dict()


def market_data() -> dict[str, Any]:
    """Replay, ingest and Kafka throughput."""
    b = Board("aether-market-data", "Aether market data", ["market-data"])
    b.panel("Replay rate (venue frames sent)", [("sum(rate(venue_replay_frames_sent_total[1m]))", "frames/s")],
            unit="none")
    b.panel("Ingest frames received", [("sum(rate(ingest_frames_received_total[1m]))", "frames/s")], unit="none")
    b.panel("Kafka throughput (records acknowledged, per topic)", [
        ("sum by (topic) (rate(ingest_records_published_total[1m]))", "ingest {{topic}}"),
        ('sum by (topic) (rate(oms_events_published_total{outcome="ok"}[1m]))', "oms {{topic}}"),
    ], unit="none")
    b.panel("Ingest lag", [
        ("histogram_quantile(0.99, sum by (le) (rate(ingest_publish_latency_seconds_bucket[1m])))",
         "p99 receive to Kafka ack"),
        ("max(ingest_feed_lag_seconds)", "feed lag (receive - exchange time)"),
        ("max(venue_replay_lag_seconds)", "replay behind schedule"),
    ], unit="s")
    b.panel("Checksums", [
        ("sum(rate(ingest_checksums_verified_total[1m]))", "verified/s"),
        ("sum(increase(ingest_checksums_failed_total[5m]))", "failed (5 min)"),
    ])
    b.panel("Feed health", [
        ("sum(increase(ingest_gaps_total[5m]))", "gaps (5 min)"),
        ("sum(increase(ingest_reconnects_total[5m]))", "reconnects (5 min)"),
        ("max(ingest_producer_queue)", "producer queue"),
        ("max(ingest_connected)", "connected"),
    ])
    _budget_panels(b, "kraken-ws-ingest")
    return b.to_dict()


def oms() -> dict[str, Any]:
    """Orders, rejects, fills and reconciliation."""
    b = Board("aether-oms", "Aether OMS", ["oms"])
    b.panel("Orders by outcome", [("sum by (outcome) (rate(oms_orders_total[5m]))", "{{outcome}}")], unit="none")
    b.panel("Orders by state (transitions, 1 h)", [("sum by (to) (increase(oms_transitions_total[1h]))", "{{to}}")])
    b.panel("Reject reasons (1 h)", [("sum by (code) (increase(oms_rejections_total[1h]))", "{{code}}")])
    b.panel("Fills by source", [("sum by (source) (rate(oms_fills_total[5m]))", "{{source}}")], unit="none")
    b.panel("Reconciliations", [("sum by (status) (increase(oms_reconciliations_total[1h]))", "{{status}}")])
    b.panel("Reconciliation differences (1 h)", [
        ("sum by (kind) (increase(oms_reconciliation_differences_total[1h]))", "{{kind}}")])
    b.panel("Pre-trade checks", [
        ("sum by (outcome) (rate(policy_checks_total[5m]))", "policy {{outcome}}"),
        ("sum by (outcome) (rate(risk_checks_total[5m]))", "risk {{outcome}}"),
    ], unit="none")
    b.panel("Unknown venue outcomes (1 h)", [("sum by (call) (increase(oms_unknown_outcomes_total[1h]))", "{{call}}")])
    return b.to_dict()


def dashboards(spec: PlatformSpec) -> dict[str, dict[str, Any]]:
    """Every dashboard by file name."""
    out = {"overview.json": overview(), "market-data.json": market_data(), "oms.json": oms()}
    for c in spec.components:
        if c.kind is Kind.SERVICE:
            out[f"service-{c.name}.json"] = service(c.name)
    return out
