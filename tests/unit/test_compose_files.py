"""The compose files in compose/ are the spec's rendering, and that rendering says what the spec says."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from sandbox.runtimes.docker import compose as gen
from sandbox.spec.budget import budget_of
from sandbox.spec.loader import default_spec
from sandbox.spec.models import Kind

SPEC = default_spec()
BASE = yaml.safe_load((gen.repo_compose_dir() / gen.BASE_FILE).read_text())
OFFLINE = yaml.safe_load((gen.repo_compose_dir() / gen.OFFLINE_FILE).read_text())


def test_committed_files_match_the_spec():
    assert gen.drift(SPEC, gen.repo_compose_dir()) == [], "run `python -m sandbox.runtimes.docker.compose write`"


def test_one_service_per_component_with_an_image_except_the_excluded():
    expected = [c.name for c in SPEC.components if c.images is not None and gen.excluded(c) is None]
    assert list(BASE["services"]) == expected
    # Feast runs from the feast target of docker/Dockerfile (its own venv at /opt/feast), given time to start
    assert BASE["services"]["feast"]["command"] == ["python", "-m", "sandbox.features"]
    assert BASE["services"]["feast"]["healthcheck"]["start_period"] == gen.FEAST_START_PERIOD
    assert OFFLINE["services"]["feast"]["image"].endswith(":-aether-sandbox/feast-offline:0.1}")
    assert set(OFFLINE["services"]) == {c.name for c in SPEC.components if c.name in BASE["services"] and c.images.offline}


@pytest.mark.parametrize("name", list(BASE["services"]))
def test_limits_reservations_and_ports(name):
    svc, budget = BASE["services"][name], budget_of(SPEC.component(name))
    # the spec's limit by default; the runtime lifts it while a container starts and applies it once healthy
    assert svc["cpus"] == f"${{{gen.cpus_var(name)}:-{budget.cpu_m.limit / 1000:g}}}"
    assert svc["mem_limit"] == f"{budget.memory_mib.limit}m"
    assert svc["mem_reservation"] == f"{budget.memory_mib.request}m"
    resources = svc["deploy"]["resources"]
    assert resources["limits"]["cpus"] == svc["cpus"]
    assert float(resources["reservations"]["cpus"]) == budget.cpu_m.request / 1000
    assert resources["limits"]["memory"] == svc["mem_limit"]
    for port in svc.get("ports", []):
        assert port.startswith("127.0.0.1:"), port
    c = SPEC.component(name)
    assert f":-{c.host_port}}}:" in svc["ports"][0]
    assert svc["image"] == f"${{AETHER_SANDBOX_IMAGE_{name.upper().replace('-', '_')}:-{c.images.default}}}"
    assert set(svc.get("depends_on", {})) == set(c.depends_on)
    assert all(d == {"condition": "service_healthy"} for d in svc.get("depends_on", {}).values())
    assert svc["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")


def test_profiles_include_what_their_members_depend_on():
    for name, svc in BASE["services"].items():
        for dep in svc.get("depends_on", {}):
            assert set(svc["profiles"]) <= set(BASE["services"][dep]["profiles"]), (name, dep)
    # universe-service is in `minimal` and needs the venue, so the venue is too
    assert "minimal" in BASE["services"]["kraken-venue"]["profiles"]
    assert BASE["services"]["prometheus"]["profiles"] == ["observability"]


def test_environment_points_into_the_network_and_holds_no_secret():
    services = BASE["services"]
    auth = services["auth-service"]["environment"]
    assert auth["AUTH_DATABASE_URL"] == "postgresql://aether:${AETHER_SANDBOX_POSTGRES_PASSWORD:?see docs/docker-runtime.md}@timescaledb:5432/auth"
    assert auth["AUTH_REDIS_URL"] == "redis://redis:6379/0"
    assert services["kraken-ws-ingest"]["environment"]["INGEST_KRAKEN_WS_URL"] == "ws://kraken-venue:8081"
    assert services["oms-service"]["environment"]["OMS_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert services["policy-service"]["environment"]["KRAKEN_CREDENTIALS_DIR"] == gen.KRAKEN_MOUNT
    for name, svc in services.items():
        for key, value in (svc.get("environment") or {}).items():
            assert "127.0.0.1" not in value or key == "KAFKA_ADVERTISED_LISTENERS", (name, key)
            if re.search(r"(PASSWORD|_SECRET|ENCRYPTION_KEY|ACCOUNTS)$", key):
                assert value.startswith("${") or "${" in value, (name, key, value)
    text = (gen.repo_compose_dir() / gen.BASE_FILE).read_text()
    assert "${AETHER_SANDBOX_SECRETS_ENCRYPTION_KEY:?" in text


def test_named_volumes_and_append_only_redis():
    assert {"timescaledb-data", "kafka-data", "redis-data"} <= set(BASE["volumes"])
    assert set(BASE["volumes"]) == {f"{c.name}-{v.name}" for c in SPEC.components if c.name in BASE["services"]
                                    for v in c.storage[:1] if v.persistent} | {"timescaledb-backup"}
    # The nightly backup writes to a volume of its own, where the scheduler's backup job puts it.
    assert "timescaledb-backup:/home/aether/backups" in BASE["services"]["workflow-scheduler"]["volumes"]
    assert "--appendonly" in BASE["services"]["redis"]["command"]
    assert BASE["services"]["redis"]["command"][BASE["services"]["redis"]["command"].index("--appendonly") + 1] == "yes"
    assert BASE["services"]["kraken-ws-ingest"]["healthcheck"]["test"] == ["CMD", *SPEC.component("kraken-ws-ingest").readiness.command]


def test_observability_containers_mount_the_wired_files_and_services_trace_only_when_told():
    from sandbox.observability.compose import TRACE_ENVIRONMENT, WIRING

    root = gen.repo_compose_dir()
    observability = {c.name for c in SPEC.components if c.kind is Kind.OBSERVABILITY}
    assert observability == set(WIRING) and "promtail" in observability
    for name in observability:
        svc, wiring = BASE["services"][name], WIRING[name]
        mounts = [v.rsplit(":", 2) for v in svc["volumes"]]
        assert [(source, target) for source, target, _ in mounts] == [
            (path if path.startswith("/") else f"../{path}", target) for path, target in wiring.volumes]
        assert all(mode == "ro" and (source.startswith("/") or (root / source).exists())
                   for source, _, mode in mounts), name
        assert svc.get("command", []) == list(wiring.command)
    # promtail reads the containers' logs through the Docker socket, read-only, and needs Loki first
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in BASE["services"]["promtail"]["volumes"]
    assert BASE["services"]["promtail"]["depends_on"] == {"loki": {"condition": "service_healthy"}}
    # the endpoint is a variable the runtime sets only when Tempo runs; empty (tracing off) otherwise
    for var in TRACE_ENVIRONMENT:
        assert BASE["services"]["auth-service"]["environment"][var] == "${" + gen.V_OTLP_ENDPOINT + ":-}"
        assert var not in BASE["services"]["timescaledb"].get("environment", {})


def test_initdb_creates_every_service_database():
    sql = (gen.repo_compose_dir() / gen.INITDB_DIR / gen.INITDB_FILE).read_text()
    for c in SPEC.components:
        for db in c.databases:
            assert f'CREATE DATABASE "{db}";' in sql


@pytest.mark.skipif(not (shutil.which("docker-compose") or shutil.which("docker")), reason="no compose CLI installed")
def test_compose_accepts_the_files(tmp_path):
    from sandbox.runtimes.docker.composecli import Compose

    env = tmp_path / "compose.env"
    values = {gen.V_PG_PASSWORD: "pw", gen.V_SECRETS_DIR: str(tmp_path), **{v: "x" for v in gen.CREDENTIAL_VARS.values()}}
    env.write_text("".join(f"{k}='{v}'\n" for k, v in values.items()))
    files = [gen.repo_compose_dir() / gen.BASE_FILE, gen.repo_compose_dir() / gen.OFFLINE_FILE]
    result = subprocess.run(Compose("aether-check", files, env).argv("config"), capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)["services"]
    assert rendered["timescaledb"]["image"] == "aether-sandbox/postgres-offline:0.1"
    assert rendered["timescaledb"]["cpus"] == budget_of(SPEC.component("timescaledb")).cpu_m.limit / 1000
    assert rendered["kafka"]["ports"][0].endswith(":9094/tcp")  # the official listener, unless the env file says 9092
    assert rendered["auth-service"]["environment"]["AUTH_DATABASE_URL"].startswith("postgresql://aether:pw@timescaledb:5432/")


def test_project_names_differ_per_state_root(tmp_path):
    from sandbox.runtimes.docker.runtime import project_name
    from sandbox.runtimes.local.state import StateDir

    one, two = StateDir.for_name("default", tmp_path / "one"), StateDir.for_name("default", tmp_path / "two")
    # two state roots never share named volumes (nor the database password inside them)
    assert project_name(one) != project_name(two)
    assert project_name(one) == project_name(StateDir.for_name("default", tmp_path / "one"))
    assert project_name(one).startswith("aether-default-")
