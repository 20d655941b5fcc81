"""The local runtime end to end: up, status, crash handling, budgets, down, data across restarts.

Each test runs a real supervisor with real embedded servers in a sandbox of its
own (own state directory, kernel-assigned ports) and takes it down at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.infra.procstats import pid_alive
from sandbox.spec.loader import bundled_spec_path, use_spec_file

pytestmark = pytest.mark.integration

runner = CliRunner()
INFRA = ["timescaledb", "redis", "nats", "kafka"]


@pytest.fixture
def sandbox_home(monkeypatch):
    """A private state root (searchable by the PostgreSQL account) and dynamic ports; torn down after."""
    root = Path(tempfile.mkdtemp(prefix="aether-test-"))
    root.chmod(0o711)
    monkeypatch.setenv("AETHER_SANDBOX_HOME", str(root))
    monkeypatch.setenv("AETHER_SANDBOX_PORTS", "dynamic")
    yield root
    runner.invoke(app, ["down", "--runtime", "local", "--volumes"])
    use_spec_file(None)
    shutil.rmtree(root, ignore_errors=True)


def cli(*args: str):
    result = runner.invoke(app, list(args))
    return result


def status() -> dict:
    result = cli("status", "--runtime", "local", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_up_status_down_leaves_nothing(sandbox_home):
    result = cli("up", "--runtime", "local", "--json", *INFRA)
    assert result.exit_code == 0, result.output + result.stderr
    data = json.loads(result.stdout)
    by_name = {c["name"]: c for c in data["components"]}
    assert set(by_name) == set(INFRA)
    for c in by_name.values():
        assert (c["state"], c["health"]) == ("running", "healthy"), c
        assert c["usage"]["enforced"] is True
        assert c["pid"] and pid_alive(c["pid"]) and _listening(c["port"])
    assert by_name["timescaledb"]["usage"]["memory_limit_mib"] == 2048
    assert by_name["redis"]["usage"]["cpu_limit_m"] == 100
    assert any("TimescaleDB extension absent" in n for n in data["notes"])
    pids = [c["pid"] for c in by_name.values()]
    ports = [c["port"] for c in by_name.values()]

    result = cli("down", "--runtime", "local")
    assert result.exit_code == 0
    assert not any(pid_alive(p) for p in pids)
    assert not any(_listening(p) for p in ports)
    assert status()["up"] is False


def test_crashed_process_is_detected_and_restarted(sandbox_home):
    assert cli("up", "--runtime", "local", "redis").exit_code == 0
    before = {c["name"]: c for c in status()["components"]}["redis"]
    os.kill(before["pid"], 9)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = {c["name"]: c for c in status()["components"]}["redis"]
        if after["restarts"] == 1 and after["state"] == "running":
            break
        time.sleep(0.2)
    assert after["restarts"] == 1 and after["state"] == "running", after
    assert after["pid"] != before["pid"]
    assert "killed by signal SIGKILL" in after["detail"]



def test_stop_holds_a_component_until_start_and_kill_is_a_crash(sandbox_home):
    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.spec.loader import default_spec

    assert cli("up", "--runtime", "local", "redis", "nats").exit_code == 0
    before = {c["name"]: c for c in status()["components"]}
    result = cli("stop", "--runtime", "local", "redis")
    assert result.exit_code == 0, result.output
    assert not pid_alive(before["redis"]["pid"]) and not _listening(before["redis"]["port"])
    time.sleep(3)  # several monitor rounds: a held component is not restarted
    held = {c["name"]: c for c in status()["components"]}
    assert held["redis"]["state"] == "stopped" and held["redis"]["pid"] is None, held["redis"]
    assert "aether-sandbox stop" in held["redis"]["detail"] and held["redis"]["restarts"] == 0
    assert held["nats"]["state"] == "running" and not _listening(before["redis"]["port"])

    result = cli("start", "--runtime", "local", "--json", "redis")
    assert result.exit_code == 0, result.output
    started = json.loads(result.stdout)
    assert (started["state"], started["health"]) == ("running", "healthy") and started["detail"] == ""
    assert started["pid"] != before["redis"]["pid"] and _listening(started["port"])

    runtime, _ = choose(default_spec(), RuntimeChoice.LOCAL, "default")
    killed = runtime.kill("nats")
    assert killed == before["nats"]["pid"]
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        after = {c["name"]: c for c in status()["components"]}["nats"]
        if after["restarts"] == 1 and after["state"] == "running":
            break
        time.sleep(0.2)
    assert after["restarts"] == 1 and after["state"] == "running" and after["pid"] != killed, after
    assert "killed by signal SIGKILL" in after["detail"]

def test_data_survives_down_and_up(sandbox_home):
    import psycopg
    import redis

    assert cli("up", "--runtime", "local", "timescaledb", "redis").exit_code == 0
    ports = {c["name"]: c["port"] for c in status()["components"]}
    dsn = _dsn(sandbox_home, ports["timescaledb"])
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS survival (id int primary key, note text)")
        conn.execute("INSERT INTO survival VALUES (1, 'kept') ON CONFLICT DO NOTHING")
    redis.Redis(port=ports["redis"]).set("survival", "kept")
    assert cli("down", "--runtime", "local").exit_code == 0
    assert cli("up", "--runtime", "local", "timescaledb", "redis").exit_code == 0
    ports = {c["name"]: c["port"] for c in status()["components"]}
    with psycopg.connect(_dsn(sandbox_home, ports["timescaledb"])) as conn:
        assert conn.execute("SELECT note FROM survival WHERE id = 1").fetchone() == ("kept",)
    assert redis.Redis(port=ports["redis"]).get("survival") == b"kept"


def _dsn(home: Path, port: int) -> str:
    """The DSN of the sandbox's cluster, from the credentials it keeps in its data directory."""
    from sandbox.infra.postgres import EmbeddedPostgres

    return EmbeddedPostgres(home / "default" / "components" / "timescaledb", port).dsn("postgres")


@pytest.mark.parametrize(("component", "memory_mib"), [("redis", 1), ("auth-service", 40)])
def test_memory_limit_kill_is_reported(sandbox_home, tmp_path, component, memory_mib):
    """A component held to a memory limit below what it needs is OOM-killed, and `up` says so.

    redis-server cannot start in 1 MiB; auth-service (a FastAPI service, ~58 MiB idle) cannot in 40 MiB.
    """
    spec = yaml.safe_load(bundled_spec_path().read_text())
    entry = next(c for c in spec["components"] if c["name"] == component)
    entry["requests"]["memory_mib"] = memory_mib
    edited = tmp_path / "platform.yaml"
    edited.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = cli("--spec", str(edited), "up", "--runtime", "local", component, "--timeout", "90")
    assert result.exit_code == 4, result.output
    assert component in result.stderr
    assert f"memory limit of {memory_mib} MiB exceeded (OOM)" in result.stderr
    assert status()["up"] is False  # nothing left half-running


def test_unknown_component_is_a_usage_error(sandbox_home):
    result = cli("up", "--runtime", "local", "ledger")
    assert result.exit_code == 2
    assert "unknown component: ledger" in result.stderr
