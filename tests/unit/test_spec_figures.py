"""Every figure of the seed document is present and exact in the bundled spec."""

from __future__ import annotations

import re

import pytest

from sandbox.spec.budget import Basis, budget_of
from sandbox.spec.loader import default_spec
from sandbox.spec.models import Kind, Origin, Overlay

SERVICES = {
    # name: (replicas, cpu request m, memory request MiB)
    "auth-service": (3, 100, 256),
    "config-service": (2, 100, 256),
    "capital-allocator": (2, 200, 512),
    "policy-service": (2, 200, 512),
    "risk-service": (2, 200, 512),
    "oms-service": (2, 200, 512),
    "fees-service": (2, 200, 512),
    "secrets-service": (2, 200, 512),
    "universe-service": (2, 200, 512),
    "strategy-orchestrator": (2, 200, 512),
}


@pytest.fixture(scope="module")
def spec():
    return default_spec()


def test_timescaledb(spec):
    c = spec.component("timescaledb")
    assert c.replicas.base == 3
    assert (c.limits.cpu_m, c.limits.memory_mib) == (1000, 2048)
    assert c.requests.is_empty()
    assert [(v.size_gib, v.persistent, v.per_replica) for v in c.storage] == [(50, True, True)]
    assert c.backup is not None and (c.backup.cadence, c.backup.volume_gib) == ("nightly", 100)


def test_kafka(spec):
    c = spec.component("kafka")
    assert (c.replicas.base, c.replicas.for_overlay(Overlay.PRODUCTION)) == (1, 3)
    assert (c.requests.cpu_m, c.requests.memory_mib) == (500, 1024)
    assert c.limits.is_empty()
    assert [v.size_gib for v in c.storage] == [20]


def test_nats(spec):
    c = spec.component("nats")
    assert c.replicas.base == 1
    assert (c.requests.cpu_m, c.requests.memory_mib) == (100, 128)
    assert (c.limits.cpu_m, c.limits.memory_mib) == (500, 512)
    assert [v.persistent for v in c.storage] == [False]


def test_redis(spec):
    c = spec.component("redis")
    assert c.replicas.base == 2
    assert (c.requests.cpu_m, c.requests.memory_mib) == (100, 256)
    assert [(v.size_gib, v.append_only) for v in c.storage] == [(5, True)]


def test_feast(spec):
    c = spec.component("feast")
    assert c.replicas.base == 2
    assert c.depends_on == ["redis", "timescaledb"]  # the seed's redis, plus the sandbox's offline store
    assert c.requests.is_empty() and c.limits.is_empty()
    assert [v.name for v in c.storage] == ["registry"]


def test_ingest(spec):
    c = spec.component("kraken-ws-ingest")
    assert c.replicas.base == 1
    assert (c.requests.cpu_m, c.requests.memory_mib) == (100, 128)
    assert c.liveness.kind == "exec" and c.readiness.kind == "exec"
    assert "kafka" in c.depends_on


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service(spec, name):
    replicas, cpu, mem = SERVICES[name]
    c = spec.component(name)
    assert c.kind is Kind.SERVICE and c.origin is Origin.SEED
    assert c.replicas.base == replicas
    assert (c.requests.cpu_m, c.requests.memory_mib) == (cpu, mem)
    assert c.port == 8000
    assert c.liveness.path == c.readiness.path == "/healthz"
    expected_limit = 600 if name == "strategy-orchestrator" else None
    assert c.limits.cpu_m == expected_limit
    assert c.limits.memory_mib is None


def test_ten_services(spec):
    assert sorted(c.name for c in spec.components if c.kind is Kind.SERVICE) == sorted(SERVICES)


@pytest.mark.parametrize(
    ("name", "config_name"),
    [
        ("auth-service", "auth-service-config"),
        ("auth-service", "redis.aether.svc"),
        ("config-service", "config-service-database"),
        ("capital-allocator", "CAPITAL_ALLOCATOR_DB_URL"),
        ("policy-service", "/var/run/secrets/kraken"),
        ("risk-service", "/var/run/secrets/kraken"),
        ("oms-service", "/var/run/secrets/kraken"),
        ("fees-service", "fees-service-database"),
        ("secrets-service", "secrets-service-config"),
        ("universe-service", "UNIVERSE_DATABASE_URL"),
        ("strategy-orchestrator", "strategy-orchestrator-database"),
    ],
)
def test_documented_configuration_names(spec, name, config_name):
    assert config_name in [ref.name for ref in spec.component(name).config]


def test_capital_allocator_ssl_is_optional(spec):
    refs = [r for r in spec.component("capital-allocator").config if "SSL" in r.carries]
    assert refs and all(r.optional for r in refs)


def test_workflows(spec):
    cadence = {w.name: w.cadence for w in spec.workflows}
    assert cadence["kraken-stream-mirror"] == "intra-day"
    assert cadence["coingecko-import"] == "nightly"
    assert "report-generation" in cadence


def test_observability_stack(spec):
    names = {c.name for c in spec.components if c.kind is Kind.OBSERVABILITY}
    assert names == {"prometheus", "grafana", "alertmanager", "loki", "tempo", "promtail"}
    promtail = spec.component("promtail")
    assert (promtail.origin, promtail.depends_on, promtail.images.offline) == (Origin.SANDBOX, ["loki"], None)


def test_budget_policy_applied_per_dimension(spec):
    so = budget_of(spec.component("strategy-orchestrator"))
    assert (so.cpu_m.request, so.cpu_m.limit, so.cpu_m.basis) == (200, 600, Basis.REQUEST_AND_LIMIT)
    assert (so.memory_mib.limit, so.memory_mib.basis) == (512, Basis.REQUEST_ONLY)
    ts = budget_of(spec.component("timescaledb"))
    assert (ts.cpu_m.request, ts.cpu_m.limit, ts.cpu_m.basis) == (1000, 1000, Basis.LIMIT_ONLY)
    feast = budget_of(spec.component("feast"))
    assert feast.cpu_m.basis is Basis.SANDBOX and not feast.cpu_m.documented


def test_sandbox_components_are_marked(spec):
    sandbox_only = {c.name for c in spec.components if c.origin is Origin.SANDBOX}
    assert sandbox_only == {"kraken-venue", "workflow-scheduler", "coingecko-sim", "promtail"}


def _seed_table(text: str) -> dict[str, tuple[int, int, int]]:
    """Parse the seed's Core Services table: name -> (replicas, cpu m, memory MiB)."""
    rows = {}
    for match in re.finditer(r"\(`([a-z-]+)`\) \| (\d+) \| (\d+)m / (\d+)Mi", text):
        name, replicas, cpu, mem = match.groups()
        rows[name] = (int(replicas), int(cpu), int(mem))
    return rows


@pytest.mark.shared
def test_spec_matches_the_seed_document(spec, shared_dir):
    """Read the figures straight from the seed so any drift between it and the spec fails."""
    text = (shared_dir / "seed" / "system-requirements.md").read_text()
    table = _seed_table(text)
    assert table == SERVICES
    assert "(600m limit)" in text and spec.component("strategy-orchestrator").limits.cpu_m == 600
    assert "1 vCPU / 2 GiB memory limits" in text and "50 GiB of storage" in text and "100 GiB volume" in text
    assert "0.5 vCPU and 1 GiB memory" in text and "20 GiB of" in text and "three replicas" in text
    assert "0.1 vCPU / 128 MiB requests and 0.5 vCPU /\n  512 MiB limits" in text
    assert "0.1 vCPU / 256 MiB\n  requests and 5 GiB" in text
    assert "Two replicas of the gRPC/HTTP serving binary" in text
    assert "Single replica streaming Kraken market data into\n  Kafka with 0.1 vCPU / 128 MiB" in text
