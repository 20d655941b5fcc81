"""The CLI end to end through typer's runner: output, JSON, exit codes, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sandbox import __version__
from sandbox.cli.app import app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(app, list(args))


def test_version():
    result = run("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"aether-sandbox {__version__}"


def test_spec_json_lists_every_component_with_exact_figures():
    result = run("spec", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    by_name = {c["name"]: c for c in data["components"]}
    assert len(by_name) == 25
    assert by_name["promtail"]["budget"]["memory_mib"]["basis"] == "neither documented: sandbox-assigned"
    assert by_name["timescaledb"]["limits"] == {"cpu_m": 1000, "memory_mib": 2048}
    assert by_name["strategy-orchestrator"]["limits"] == {"cpu_m": 600, "memory_mib": None}
    assert by_name["auth-service"]["replicas"]["base"] == 3
    assert by_name["kafka"]["replicas"] == {"base": 1, "production": 3}
    assert by_name["feast"]["budget"]["cpu_m"]["basis"] == "neither documented: sandbox-assigned"
    assert by_name["oms-service"]["budget"]["memory_mib"] == {"request": 512, "limit": 512, "basis": "only a request documented"}


def test_spec_table_shows_policy():
    result = run("spec")
    assert result.exit_code == 0
    assert "auth-service" in result.stdout and "Budget policy" in result.stdout


@pytest.mark.parametrize(("overlay", "cpu", "mem", "storage"), [("base", 7600, 17408, 280), ("production", 8600, 19456, 320)])
def test_capacity_json(overlay, cpu, mem, storage):
    result = run("capacity", "--overlay", overlay, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["overlay"] == overlay
    assert data["totals"]["requests"] == {"cpu_m": cpu, "memory_mib": mem}
    assert data["totals"]["storage_gib"] == storage
    assert data["by_kind"]["service"]["requests"] == {"cpu_m": 3700, "memory_mib": 9472}
    assert "feast" in data["undocumented"]["requests.cpu_m"]


def test_capacity_rejects_unknown_overlay():
    result = run("capacity", "--overlay", "staging")
    assert result.exit_code == 2


def test_spec_validate_ok(tmp_path):
    from sandbox.spec.loader import bundled_spec_path

    copy = tmp_path / "platform.yaml"
    shutil.copy(bundled_spec_path(), copy)
    result = run("spec", "validate", str(copy))
    assert result.exit_code == 0
    assert "valid" in result.stdout


def test_spec_validate_reports_location_message_without_traceback(tmp_path):
    from sandbox.spec.loader import bundled_spec_path

    bad = tmp_path / "platform.yaml"
    bad.write_text(bundled_spec_path().read_text().replace("depends_on: [redis, timescaledb]", "depends_on: [redis, timescaledb, memcached]"))
    result = run("spec", "validate", str(bad))
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "components[feast].depends_on[2]: unknown component 'memcached'" in result.stderr
    assert "next:" in result.stderr


def test_missing_file_is_a_clear_error(tmp_path):
    result = run("spec", "validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "cannot read spec file" in result.stderr


def test_debug_shows_the_traceback(tmp_path):
    result = run("--debug", "spec", "validate", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def _engine_answers() -> bool:
    if not shutil.which("docker"):
        return False
    out = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=10, check=False)
    return out.returncode == 0


def test_doctor_tells_the_truth_about_this_machine():
    result = run("doctor", "--json")
    data = json.loads(result.stdout)
    checks = {c["name"]: c for c in data["checks"]}
    # The engine check agrees with the docker CLI's own answer.
    assert (checks["docker engine"]["status"] == "ok") == _engine_answers()
    # The embedded binaries this project depends on are installed with it.
    for name in ("PostgreSQL (timescaledb)", "Kafka-compatible broker (kafka)", "Redis (redis)", "NATS JetStream (nats)"):
        assert checks[f"embedded {name}"]["status"] == "ok", checks[f"embedded {name}"]
    assert data["runtimes"]["local"] is True
    assert data["auto"] in ("docker", "local")
    assert result.exit_code == 0
    # Every failed check says how to fix it.
    assert all(c["fix"] for c in data["checks"] if c["status"] != "ok")


def test_doctor_human_output():
    result = run("doctor")
    assert result.exit_code == 0
    assert "runtime local: can run" in result.stdout
    assert "--runtime auto picks" in result.stdout


def test_console_script_runs_in_a_fresh_process():
    exe = shutil.which("aether-sandbox", path=os.path.dirname(sys.executable))
    assert exe, "the console script is installed beside the interpreter"
    out = subprocess.run([exe, "capacity", "--json"], capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout)["totals"]["requests"]["cpu_m"] == 7600


def test_a_reader_that_goes_away_is_not_an_internal_error():
    """``aether-sandbox ... | head -1`` once head has left: no report of the closed pipe, the shell's SIGPIPE status."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # every write the command makes fails with EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "sandbox.cli", "spec", "--json"], stdout=write_end,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write_end)
    assert "internal error" not in proc.stderr and "Broken pipe" not in proc.stderr, proc.stderr
    assert proc.returncode == 141
