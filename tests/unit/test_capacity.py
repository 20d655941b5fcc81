"""Capacity totals against totals computed by hand from the seed."""

from __future__ import annotations

from sandbox.spec.capacity import capacity
from sandbox.spec.loader import default_spec
from sandbox.spec.models import Overlay


def test_ten_services_base_totals():
    # 3x100 + 2x100 + 8 services x 2 x 200 = 3,700m; 3x256 + 2x256 + 8 x 2 x 512 = 9,472 MiB
    report = capacity(default_spec(), Overlay.BASE)
    services = report.by_kind["service"]["requests"]
    assert (services.cpu_m, services.memory_mib) == (3700, 9472)


def test_platform_base_totals():
    # services 3,700m / 9,472 MiB
    # + timescaledb 3 x 1000m / 3 x 2048 (request taken from the limit)
    # + kafka 500m / 1024 + nats 100m / 128 + redis 2 x 100m / 2 x 256 + ingest 100m / 128
    report = capacity(default_spec(), Overlay.BASE)
    requests = report.totals["requests"]
    assert (requests.cpu_m, requests.memory_mib) == (3700 + 3000 + 500 + 100 + 200 + 100, 9472 + 6144 + 1024 + 128 + 512 + 128)
    limits = report.totals["limits"]
    # documented limits only: timescaledb 3 x 1000m / 3 x 2048, nats 500m / 512, strategy-orchestrator 2 x 600m
    assert (limits.cpu_m, limits.memory_mib) == (3000 + 500 + 1200, 6144 + 512)
    # storage: timescaledb 3 x 50 + 100 backup, kafka 20, redis 2 x 5
    assert report.totals["storage_gib"] == 150 + 100 + 20 + 10


def test_production_overlay_scales_kafka():
    base = capacity(default_spec(), Overlay.BASE)
    prod = capacity(default_spec(), Overlay.PRODUCTION)
    kafka = next(r for r in prod.components if r.name == "kafka")
    assert kafka.replicas == 3
    assert prod.totals["requests"].cpu_m - base.totals["requests"].cpu_m == 2 * 500
    assert prod.totals["requests"].memory_mib - base.totals["requests"].memory_mib == 2 * 1024
    assert prod.totals["storage_gib"] - base.totals["storage_gib"] == 2 * 20


def test_undocumented_figures_are_flagged_not_zero():
    report = capacity(default_spec(), Overlay.BASE)
    feast = next(r for r in report.components if r.name == "feast")
    assert feast.requests.cpu_m is None and feast.limits.memory_mib is None
    assert "no documented cpu_m request" in feast.flags
    assert "feast" in report.undocumented["requests.cpu_m"]
    assert set(report.undocumented["requests.memory_mib"]) == {"feast", "prometheus", "alertmanager", "grafana", "loki", "tempo"}


def test_sandbox_components_are_not_counted():
    report = capacity(default_spec(), Overlay.BASE)
    assert {r.name for r in report.components}.isdisjoint(report.sandbox_only)
    assert report.sandbox_only == ["kraken-venue", "workflow-scheduler", "coingecko-sim", "promtail"]
