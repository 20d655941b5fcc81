"""Prometheus rules: budgets from the platform spec, recording rules, and the SLO alerts.

Three rule files are generated (``python -m sandbox.observability.generate``) and
committed under ``observability/prometheus/rules/``; a test fails when they drift:

* ``budgets.yml``: one constant series per component and bound, from the spec's
  enforced budget (:func:`sandbox.spec.budget.budget_of`):
  ``aether_budget_cpu_millicores{component, bound="request"|"limit"}`` and
  ``aether_budget_memory_bytes{...}``. The spec stays the one source of the figures.
* ``recording.yml``: per-component request rate, error ratio, p99 latency, CPU and
  memory, in the form the dashboards, the alerts and ``aether-sandbox metrics`` share.
* ``slo.yml``: the alerts of :data:`SLOS` (stated in ``docs/slo.md``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.spec.budget import budget_of
from sandbox.spec.models import PlatformSpec

MIB = 2**20

#: Recording rules: (name, expression). Every component is a Prometheus target labelled ``component``.
RECORDING: tuple[tuple[str, str], ...] = (
    ("component:http_requests:rate1m", "sum by (component) (rate(http_requests_total[1m]))"),
    (
        "component:http_errors:ratio_rate5m",
        'sum by (component) (rate(http_requests_total{status=~"5.."}[5m]))'
        " / sum by (component) (rate(http_requests_total[5m]))",
    ),
    (
        "component:http_latency_seconds:p99_5m",
        "histogram_quantile(0.99, sum by (component, le) (rate(http_request_duration_seconds_bucket[5m])))",
    ),
    # The sandbox's own accounting (cgroup, or the process tree) covers every component, infrastructure
    # included; where it is absent (docker runtime) the process collector of each Python component stands in.
    (
        "component:cpu_millicores",
        "max by (component) (aether_component_cpu_millicores)"
        " or sum by (component) (rate(process_cpu_seconds_total[1m])) * 1000",
    ),
    (
        "component:memory_bytes",
        "max by (component) (aether_component_memory_bytes) or sum by (component) (process_resident_memory_bytes)",
    ),
    ("component:ingest_records_published:rate1m", "sum by (component) (rate(ingest_records_published_total[1m]))"),
)


@dataclass(frozen=True)
class Slo:
    """One objective and the alert that fires when it is missed."""

    alert: str
    objective: str
    expr: str
    duration: str
    severity: str = "page"


#: The SLOs: thresholds live here once; docs/slo.md states them in words.
SLOS: tuple[Slo, ...] = (
    Slo("AetherHighErrorRatio", "at most 1% of a component's HTTP requests answer 5xx (5 min window)",
        "component:http_errors:ratio_rate5m > 0.01", "5m"),
    Slo("AetherHighLatencyP99", "p99 HTTP latency of a component stays under 500 ms (5 min window)",
        "component:http_latency_seconds:p99_5m > 0.5", "10m"),
    Slo("AetherCpuOverBudget", "a component's CPU stays within its enforced budget (spec limit)",
        'component:cpu_millicores > on (component) aether_budget_cpu_millicores{bound="limit"}', "5m", "ticket"),
    Slo("AetherMemoryNearBudget", "a component's memory stays below 90% of its enforced budget (spec limit)",
        'component:memory_bytes > on (component) 0.9 * aether_budget_memory_bytes{bound="limit"}', "5m", "ticket"),
    Slo("AetherIngestChecksumFailures", "no order book checksum fails in the ingest",
        "sum by (component) (increase(ingest_checksums_failed_total[5m])) > 0", "0m"),
    Slo("AetherMarketDataStale", "the ingest publishes market data continuously (no 2 min silence while up)",
        "component:ingest_records_published:rate1m == 0 or max by (component) (ingest_connected) == 0", "2m"),
    Slo("AetherReconciliationDifferences", "OMS reconciliation finds no difference with the venue",
        "sum by (component) (increase(oms_reconciliation_differences_total[15m])) > 0", "0m"),
    Slo("AetherComponentDown", "every component runs healthy and answers its scrape",
        'up{job="aether"} == 0 or aether_component_up == 0', "1m"),
)


@dataclass(frozen=True)
class BudgetRow:
    """One component's enforced budget (from the spec, or a local plan derived from it)."""

    component: str
    cpu_request_m: int
    cpu_limit_m: int
    memory_request_mib: int
    memory_limit_mib: int


def spec_budgets(spec: PlatformSpec) -> list[BudgetRow]:
    """Every component's budget per the spec's budget policy."""
    rows = []
    for c in spec.components:
        b = budget_of(c)
        rows.append(BudgetRow(c.name, b.cpu_m.request, b.cpu_m.limit, b.memory_mib.request, b.memory_mib.limit))
    return rows


def budget_rules(rows: list[BudgetRow]) -> dict[str, Any]:
    """The ``budgets.yml`` rule group: the budgets as constant series."""
    rules: list[dict[str, Any]] = []
    for r in rows:
        for bound, cpu, mem in (("request", r.cpu_request_m, r.memory_request_mib),
                                ("limit", r.cpu_limit_m, r.memory_limit_mib)):
            labels = {"component": r.component, "bound": bound}
            rules.append({"record": "aether_budget_cpu_millicores", "expr": f"vector({cpu})", "labels": labels})
            rules.append({"record": "aether_budget_memory_bytes", "expr": f"vector({mem * MIB})", "labels": labels})
    return {"groups": [{"name": "aether-budgets", "rules": rules}]}


def recording_rules() -> dict[str, Any]:
    """The ``recording.yml`` rule group."""
    return {"groups": [{"name": "aether-components", "rules": [{"record": n, "expr": e} for n, e in RECORDING]}]}


def slo_rules(alert_for: str | None = None) -> dict[str, Any]:
    """The ``slo.yml`` rule group; ``alert_for`` overrides every ``for`` (short in tests)."""
    rules = []
    for slo in SLOS:
        rules.append({
            "alert": slo.alert,
            "expr": slo.expr,
            "for": alert_for or slo.duration,
            "labels": {"severity": slo.severity},
            "annotations": {
                "summary": f"{{{{ $labels.component }}}}: {slo.alert}",
                "objective": slo.objective,
                "runbook": "docs/slo.md#" + slo.alert.lower(),
            },
        })
    return {"groups": [{"name": "aether-slo", "rules": rules}]}


def rule_files(rows: list[BudgetRow], alert_for: str | None = None) -> dict[str, dict[str, Any]]:
    """Every rule file by name, for the components in ``rows``."""
    return {"budgets.yml": budget_rules(rows), "recording.yml": recording_rules(), "slo.yml": slo_rules(alert_for)}
