"""Prometheus configuration for both runtimes, derived from the spec (or a local plan).

Every component that serves Prometheus text on ``/metrics`` is one target of job
``aether``, labelled ``component``: the platform services (kit), the ingest, the
venue simulator and the observability stack itself. The infrastructure has no
exporter installable here (PostgreSQL, Kafka/Tansu, Redis; NATS's monitoring
port speaks JSON, not Prometheus text): in the local runtime the sandbox's own
exporter (job ``aether-sandbox``, :mod:`.exporter`) covers their state, CPU and
memory; in the docker runtime they are not scraped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sandbox.spec.models import Kind, PlatformSpec

#: Kinds whose components serve Prometheus text on ``/metrics``.
SCRAPED_KINDS = frozenset({Kind.SERVICE.value, Kind.INGEST.value, Kind.OBSERVABILITY.value})
#: Components of other kinds that do too (the other simulators and the scheduler serve none yet).
SCRAPED_COMPONENTS = frozenset({"kraken-venue"})


def scraped(name: str, kind: str) -> bool:
    """Whether component ``name`` of ``kind`` serves ``/metrics``."""
    return kind in SCRAPED_KINDS or name in SCRAPED_COMPONENTS

RULES_DIR_IN_CONTAINER = "/etc/prometheus/rules"


@dataclass(frozen=True)
class Target:
    """One scrape target."""

    component: str
    address: str
    """``host:port``."""


def targets_of(spec: PlatformSpec, names: Iterable[str] | None = None) -> list[Target]:
    """Container targets (``name:port`` on the compose network) of the scraped components."""
    wanted = set(names) if names is not None else None
    return [
        Target(c.name, f"{c.name}:{c.port}")
        for c in spec.components
        if scraped(c.name, c.kind.value) and c.port and (wanted is None or c.name in wanted)
    ]


def file_sd(targets: Iterable[Target]) -> list[dict[str, Any]]:
    """A ``file_sd_configs`` document: one entry per target."""
    return [{"targets": [t.address], "labels": {"component": t.component}} for t in targets]


def config(
    *,
    rule_files: list[str],
    scrape_interval: str = "15s",
    evaluation_interval: str = "15s",
    static_targets: list[Target] | None = None,
    targets_file: str | None = None,
    alertmanagers: list[str] = (),  # type: ignore[assignment]
    sandbox_exporter: str | None = None,
) -> dict[str, Any]:
    """A ``prometheus.yml``: job ``aether`` (static or from a file), the sandbox exporter, alerting."""
    aether: dict[str, Any] = {"job_name": "aether", "metrics_path": "/metrics"}
    if targets_file:
        aether["file_sd_configs"] = [{"files": [targets_file], "refresh_interval": "30s"}]
    else:
        aether["static_configs"] = [
            {"targets": [t.address], "labels": {"component": t.component}} for t in static_targets or []
        ]
    scrape = [aether]
    if sandbox_exporter:
        scrape.append({"job_name": "aether-sandbox", "honor_labels": True,
                       "static_configs": [{"targets": [sandbox_exporter]}]})
    doc: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": evaluation_interval,
                   "external_labels": {"platform": "aether"}},
        "rule_files": rule_files,
        "scrape_configs": scrape,
    }
    if alertmanagers:
        doc["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": list(alertmanagers)}]}]}
    return doc


def compose_config(spec: PlatformSpec) -> dict[str, Any]:
    """The committed ``observability/prometheus/prometheus.yml`` for the compose ``observability`` profile."""
    alertmanager = spec.component("alertmanager")
    return config(
        rule_files=[f"{RULES_DIR_IN_CONTAINER}/*.yml"],
        static_targets=targets_of(spec),
        alertmanagers=[f"alertmanager:{alertmanager.port}"],
    )
