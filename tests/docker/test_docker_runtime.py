"""The docker runtime against the real engine: the minimal profile in containers sized to the spec.

One platform per module (profile ``minimal``: the infrastructure plus auth,
config and universe services and the venue they need), on the offline image
set, with kernel-assigned host ports, in a state root of its own; the last
test takes it down and checks what survives.  Everything is removed in the
fixture's finalizer (``down --volumes``).
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest

from sandbox.runtimes.docker.runtime import DockerRuntime
from sandbox.runtimes.local.state import StateDir
from sandbox.spec.budget import budget_of
from sandbox.spec.loader import default_spec

pytestmark = [pytest.mark.docker, pytest.mark.xdist_group("docker")]

SPEC = default_spec()
MINIMAL = {c.name for c in SPEC.components if "minimal" in c.profiles}


@pytest.fixture(scope="module")
def platform(offline_images):
    """The minimal profile up on docker; yields the runtime and the status ``up`` returned."""
    root = Path(tempfile.mkdtemp(prefix="aether-docker-test-"))
    root.chmod(0o711)
    state = StateDir.for_name(f"t-{uuid.uuid4().hex[:8]}", root)
    runtime = DockerRuntime(SPEC, state, offline=True, spec_ports=False)
    events: list[tuple[str, str]] = []
    try:
        status = runtime.up(profile="minimal", timeout=300, progress=lambda c, e: events.append((c, e)))
        yield runtime, status, events
    finally:
        runtime.down(volumes=True)
        shutil.rmtree(root, ignore_errors=True)


def by_name(status) -> dict:
    return {c.name: c for c in status.components}


def containers(client, runtime) -> list:
    return client.containers.list(all=True, filters={"label": f"com.docker.compose.project={runtime.project}"})


def test_minimal_profile_comes_up_healthy(platform):
    runtime, status, events = platform
    components = by_name(status)
    # the profile and what its members depend on (the venue, for universe-service)
    assert MINIMAL <= set(components)
    assert "kraken-venue" in components
    for c in components.values():
        assert (c.state, c.health) == ("running", "healthy"), c
        assert c.port and c.pid
        assert c.usage.enforced is True
    services = [n for n in components if SPEC.component(n).module]
    assert len(services) >= 2
    assert ("auth-service", "running") in events and ("sandbox", f"limits applied by the engine equal the spec for {len(components)} containers") in events
    with urllib.request.urlopen(f"http://127.0.0.1:{components['auth-service'].port}/healthz", timeout=5) as response:
        assert response.status == 200
    assert any("Tansu instead of Apache Kafka" in n for n in status.notes)


def test_limits_applied_by_the_engine_equal_the_spec(platform, docker_client):
    runtime, status, _ = platform
    seen = set()
    for container in containers(docker_client, runtime):
        name = container.labels["com.docker.compose.service"]
        budget = budget_of(SPEC.component(name))
        host = container.attrs["HostConfig"]
        assert host["NanoCpus"] == budget.cpu_m.limit * 1_000_000, name
        assert host["Memory"] == budget.memory_mib.limit * 2**20, name
        assert host["MemoryReservation"] == budget.memory_mib.request * 2**20, name
        # the kernel holds the container to it (cgroup v1 files of the container, where this host has them)
        memory_file = Path(f"/sys/fs/cgroup/memory/docker/{container.id}/memory.limit_in_bytes")
        if memory_file.exists():
            assert int(memory_file.read_text()) == budget.memory_mib.limit * 2**20, name
            quota = int(Path(f"/sys/fs/cgroup/cpu/docker/{container.id}/cpu.cfs_quota_us").read_text())
            period = int(Path(f"/sys/fs/cgroup/cpu/docker/{container.id}/cpu.cfs_period_us").read_text())
            assert quota * 1000 // period == budget.cpu_m.limit, name
        seen.add(name)
    assert seen == set(by_name(status))
    for c in runtime.status().components:
        assert (c.usage.cpu_limit_m, c.usage.memory_limit_mib) == (budget_of(SPEC.component(c.name)).cpu_m.limit,
                                                                    budget_of(SPEC.component(c.name)).memory_mib.limit)
        assert c.usage.memory_mib is not None and 0 < c.usage.memory_mib < c.usage.memory_limit_mib, c


def test_ports_are_published_on_loopback_only(platform, docker_client):
    runtime, status, _ = platform
    published = 0
    for container in containers(docker_client, runtime):
        for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
            for binding in bindings or []:
                assert binding["HostIp"] == "127.0.0.1", (container.name, binding)
                published += 1
        for bindings in (container.attrs["HostConfig"]["PortBindings"] or {}).values():
            assert all(b["HostIp"] == "127.0.0.1" for b in bindings), container.name
    assert published >= len(status.components)


def test_logs_show_the_component_output(platform):
    runtime, _, _ = platform
    lines = list(runtime.logs("timescaledb", tail=50))
    assert any("database system is ready" in line or "PostgreSQL initialised" in line for line in lines), lines[-5:]


def test_a_container_killed_at_its_memory_limit_is_reported(platform, docker_client):
    runtime, _, _ = platform
    name = "config-service"
    limit = budget_of(SPEC.component(name)).memory_mib.limit
    (container,) = docker_client.containers.list(filters={
        "label": [f"com.docker.compose.project={runtime.project}", f"com.docker.compose.service={name}"]})
    # Make the service's own process the OOM killer's choice, then allocate past the limit inside its cgroup.
    hog = f"echo 1000 > /proc/1/oom_score_adj && python -c 'b = bytearray(b\"x\") * ({limit * 2} * 2**20)'"
    container.exec_run(["sh", "-c", hog])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        c = by_name(runtime.status())[name]
        if "OOM" in c.detail:
            break
        time.sleep(1)
    assert f"memory limit of {limit} MiB exceeded (OOM)" in c.detail, c
    assert c.restarts >= 1 or c.state == "crashed", c



def _wait_for(runtime, name: str, predicate, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while True:
        c = by_name(runtime.status())[name]
        if predicate(c) or time.monotonic() > deadline:
            return c
        time.sleep(0.5)


def test_stop_holds_a_container_until_start_and_kill_is_a_crash_the_engine_restarts(platform, docker_client):
    from sandbox.runtimes.base import STOPPED_DETAIL

    runtime, _, _ = platform
    name = "redis"
    before = by_name(runtime.status())[name]
    held = runtime.stop(name)
    assert (held.state, held.pid) == ("stopped", None) and STOPPED_DETAIL in held.detail, held
    time.sleep(3)  # the engine's on-failure policy leaves a container stopped by hand alone
    (container,) = docker_client.containers.list(all=True, filters={
        "label": [f"com.docker.compose.project={runtime.project}", f"com.docker.compose.service={name}"]})
    assert container.status == "exited"
    assert by_name(runtime.status())[name].state == "stopped"
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", before.port)) != 0  # nothing behind the published port

    started = runtime.start(name, timeout=60)
    assert (started.state, started.health) == ("running", "healthy") and started.pid != before.pid, started
    assert STOPPED_DETAIL not in started.detail

    killed = runtime.kill(name)
    assert killed == started.pid
    after = _wait_for(runtime, name, lambda c: c.pid not in (None, killed) and c.health == "healthy")
    assert (after.state, after.health) == ("running", "healthy") and after.pid != killed, after
    assert after.restarts == before.restarts + 1, after  # the engine's restart policy, not ours


def test_venue_admin_answers_the_host_but_not_other_containers(platform, docker_client):
    runtime, status, _ = platform
    venue = by_name(status)["kraken-venue"]
    assert _get_json(f"http://127.0.0.1:{venue.port}/admin/trading")  # from the host, through the published port
    (other,) = docker_client.containers.list(filters={
        "label": [f"com.docker.compose.project={runtime.project}", "com.docker.compose.service=auth-service"]})
    probe = ("import urllib.request, urllib.error\n"
             f"try:\n urllib.request.urlopen('http://kraken-venue:{SPEC.component('kraken-venue').port}/admin/trading', "
             "timeout=5); print('open')\n"
             "except urllib.error.HTTPError as e:\n print(e.code)\n")
    code, output = other.exec_run(["python", "-c", probe])
    assert (code, output.decode().strip()) == (0, "403")

def _get_json(url: str, body: dict | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_prometheus_scrapes_the_services_and_grafana_is_unavailable_offline(platform):
    """The observability profile's offline part: Prometheus and Alertmanager with the wired configuration."""
    runtime, _, _ = platform
    status = by_name(runtime.up(["prometheus", "alertmanager", "grafana", "promtail"], timeout=300))
    # no offline image: reported with the reason, and what depends on it too; `up` does not fail
    for name in ("loki", "tempo", "promtail"):
        assert status[name].state == "unavailable" and "no image in the offline set" in status[name].detail
    assert status["grafana"].state == "unavailable"
    assert (status["prometheus"].state, status["alertmanager"].state) == ("running", "running")
    base = f"http://127.0.0.1:{status['prometheus'].port}"
    scraped = {"auth-service", "config-service", "universe-service", "kraken-venue"}
    deadline = time.monotonic() + 90  # the scrape interval is 15 s
    while time.monotonic() < deadline:
        targets = {t["labels"]["component"]: t for t in _get_json(f"{base}/api/v1/targets")["data"]["activeTargets"]}
        if all(targets[name]["health"] == "up" for name in scraped) and targets["grafana"]["health"] == "down":
            break
        time.sleep(3)
    assert {name: targets[name]["health"] for name in scraped} == dict.fromkeys(scraped, "up"), targets
    # a component this sandbox does not run is a target that is down, not a scrape of something else
    assert targets["grafana"]["health"] == "down"
    # the rule files are mounted where the configuration expects them, and alerts go to the offline Alertmanager
    assert len(_get_json(f"{base}/api/v1/rules")["data"]["groups"]) >= 3
    assert [a["url"] for a in _get_json(f"{base}/api/v1/alertmanagers")["data"]["activeAlertmanagers"]] == [
        "http://alertmanager:9093/api/v2/alerts"]
    # no Tempo: the services' trace endpoint is empty (tracing off)
    env = runtime.compose().run("exec", "-T", "auth-service", "printenv", "OTEL_EXPORTER_OTLP_ENDPOINT")
    assert (env.returncode, env.stdout.strip()) == (0, "")


def test_feast_serves_features_from_its_image(platform):
    runtime, _, _ = platform
    feast = by_name(runtime.up(["feast"], timeout=400))["feast"]
    assert (feast.state, feast.health) == ("running", "healthy"), feast
    base = f"http://127.0.0.1:{feast.port}"  # `feast serve` listens on the container's address, published on loopback
    answer = _get_json(f"{base}/get-online-features", {
        "features": ["symbol_quote:mid_price"], "entities": {"symbol": ["BTC/USD"]}})
    assert answer["metadata"]["feature_names"] == ["symbol", "mid_price"]
    assert answer["results"][0]["values"] == ["BTC/USD"]


def test_replay_through_the_ingest_is_counted_from_the_sandbox_network(platform, docker_client):
    """Tansu advertises kafka:9092 only: the replay reads Kafka back from a one-off container on the network."""
    from sandbox.replay.run import Endpoints, ReplayRequest, replay

    runtime, _, _ = platform
    status = by_name(runtime.up(["kraken-ws-ingest"], timeout=300))
    counter = runtime.kafka_counter()
    assert counter is not None
    endpoints = Endpoints(f"http://127.0.0.1:{status['kraken-venue'].port}",
                          f"http://127.0.0.1:{status['kraken-ws-ingest'].port}",
                          f"127.0.0.1:{status['kafka'].port}", counter)
    report = replay(endpoints, ReplayRequest("v2-book10-majors", speed=None))
    assert report.failures() == []
    assert report.records_consumed == report.records_expected > 0
    # the one-off counting container is gone (other sandboxes' may exist: filter by this one's network)
    assert docker_client.containers.list(all=True, filters={
        "label": "io.aether-sandbox.oneoff", "network": f"{runtime.project}_default"}) == []


def test_workflow_run_goes_to_the_scheduler_in_the_network(platform, docker_client):
    """The mirror consumes Tansu's kafka:9092: `workflow run` asks the scheduler in the sandbox to run it."""
    from sandbox.workflows.locate import run_in_scheduler

    runtime, _, _ = platform
    scheduler = by_name(runtime.up(["workflow-scheduler"], timeout=300))["workflow-scheduler"]
    row = run_in_scheduler(f"http://127.0.0.1:{scheduler.port}", "kraken-stream-mirror", timeout=300)
    # the previous test's replay left the ingest's records in Kafka: the mirror copies them into TimescaleDB
    assert (row["outcome"], row["trigger"]) == ("ok", "api"), row
    assert row["records"] > 0 and sum(row["detail"]["rows_inserted"].values()) > 0, row
    # The nightly backup job, run now with the image's pg_dump of the server's major version:
    # every database dumped into the backup's own named volume, the mirrored rows among them.
    backup = run_in_scheduler(f"http://127.0.0.1:{scheduler.port}", "timescaledb-backup", timeout=300)
    assert backup["outcome"] == "ok" and backup["records"] > 0, backup
    scheduler_image = next(c.image for c in containers(docker_client, runtime)
                           if c.labels.get("com.docker.compose.service") == "workflow-scheduler")
    manifests = docker_client.containers.run(
        scheduler_image, ["-c", "for m in /backups/*/manifest.json; do cat \"$m\"; done; ls /backups/*/"],
        entrypoint="/bin/sh", remove=True,
        volumes={f"{runtime.project}_timescaledb-backup": {"bind": "/backups", "mode": "ro"}}).decode()
    manifest, _ = json.JSONDecoder().raw_decode(manifests)
    mirrored = sum(t["rows"] for t in manifest["databases"]["marketdata"]["tables"].values())
    assert mirrored >= sum(row["detail"]["rows_inserted"].values()), manifest["databases"]["marketdata"]
    assert "marketdata.dump" in manifests and "oms.dump" in manifests, manifests


def test_named_volume_data_survives_down_up_and_down_volumes_removes_it(platform, docker_client):
    runtime, status, _ = platform
    password = json.loads((runtime.directory / "credentials.json").read_text())["postgres_password"]
    port = by_name(status)["timescaledb"].port
    dsn = f"postgresql://aether:{password}@127.0.0.1:{port}/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (value text)")
        conn.execute("INSERT INTO kept VALUES ('survives')")
    volumes = {v.name for v in docker_client.volumes.list(filters={"label": f"com.docker.compose.project={runtime.project}"})}
    assert {f"{runtime.project}_{v}" for v in ("timescaledb-data", "redis-data")} <= volumes

    runtime.down()
    assert containers(docker_client, runtime) == []
    assert runtime.status().up is False
    again = runtime.up(["timescaledb"], timeout=120)
    assert by_name(again)["timescaledb"].port == port  # the sandbox keeps its ports
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT value FROM kept").fetchone() == ("survives",)

    runtime.down(volumes=True)
    assert docker_client.volumes.list(filters={"label": f"com.docker.compose.project={runtime.project}"}) == []
    assert not runtime.state.root.exists()
