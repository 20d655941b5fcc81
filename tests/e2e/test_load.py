"""``load run`` end to end: one local platform, the smoke profile over every service, a lowered budget, the report.

One sandbox for the module (its own state directory, kernel-assigned ports),
brought up with every service a load plan covers and taken down at the end.
The latency objectives are judged and reported, but not asserted here: CI runs
this beside other suites on two shared cores, where a p99 says more about the
machine than the service (``aether-sandbox load run`` on a quiet machine is
where they are meant to pass).  Everything else is asserted: every service
answered every request, was sampled, and stayed within its CPU and memory
budget; a budget lowered below what a service uses fails with its reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.load import catalog
from sandbox.spec.loader import bundled_spec_path, use_spec_file

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("load")]

runner = CliRunner()
SERVICES = [p.component for p in catalog.SERVICES]
NAME = "loadtest"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LATENCY = re.compile(r"^(nominal|peak): p9[59] latency ")


def cli(*args: str):
    return runner.invoke(app, list(args))


@pytest.fixture(scope="module")
def platform():
    """The local platform with every loaded service, up once for the module."""
    root = Path(tempfile.mkdtemp(prefix="aether-load-"))
    root.chmod(0o711)
    saved = {k: os.environ.get(k) for k in ("AETHER_SANDBOX_HOME", "AETHER_SANDBOX_PORTS")}
    os.environ.update(AETHER_SANDBOX_HOME=str(root), AETHER_SANDBOX_PORTS="dynamic")
    try:
        result = cli("up", "--runtime", "local", "--name", NAME, "--timeout", "180", *SERVICES)
        assert result.exit_code == 0, result.output + result.stderr
        yield root
    finally:
        cli("down", "--runtime", "local", "--name", NAME, "--volumes")
        use_spec_file(None)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def smoke(platform, tmp_path_factory):
    """``load run --profile smoke`` over every service: its JSON, exit code and HTML copy."""
    html = tmp_path_factory.mktemp("report") / "smoke.html"
    result = cli("load", "run", "--profile", "smoke", "--runtime", "local", "--name", NAME, "--json", "--html", str(html))
    assert result.exit_code in (0, 1), result.output + result.stderr
    return json.loads(result.stdout), result.exit_code, html


def test_smoke_covers_every_service_within_budget(smoke):
    data, code, _ = smoke
    verdicts = {v["service"]: v for v in data["verdicts"]}
    assert set(verdicts) == set(SERVICES)
    for service, v in verdicts.items():
        [phase] = v["phases"]
        st = phase["stats"]
        assert phase["phase"] == "nominal"
        assert st["requests"] >= 20, (service, st)
        assert st["failures"] == 0, (service, v["reasons"])
        assert st["samples"] >= 10 and st["cpu_mean_m"] is not None and st["memory_max_mib"] > 0
        assert st["cpu_mean_m"] <= v["cpu_request_m"] and st["memory_max_mib"] <= v["memory_request_mib"], v
        non_latency = [r for r in v["reasons"] if not LATENCY.match(r)]
        assert non_latency == [], (service, non_latency)
    assert code == (0 if data["passed"] else 1)
    run_dir = Path(data["run_dir"])
    for kept in ("locust_stats.csv", "locust_stats_history.csv", "resources.jsonl", "result.json", "report.html"):
        assert (run_dir / kept).stat().st_size > 0, kept
    assert list(run_dir.glob("timeline-*.jsonl"))
    assert any("ingest: replay of" in n and "frames received" in n for n in data["notes"])
    assert "the venue's Kraken rate limits were off during the run (restored after it)" in data["notes"]


def test_report_renders_in_headless_chromium(smoke):
    _, _, html = smoke
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/system-deps.sh installs it)")
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", html.as_uri()],
                         capture_output=True, text=True, timeout=120).stdout
    for service in SERVICES:
        section = dom.split(f'id="{service}"', 1)[1].split("</section>", 1)[0]
        series = dict(re.findall(r'<path class="series" data-series="([^"]+)" data-points="(\d+)"', section))
        for name in ("CPU (m)", "memory (MiB)", "p95", "p99", "ok/s"):
            assert int(series.get(name, 0)) >= 5, (service, name, series)


def test_lowered_budget_fails_with_its_reason(platform, tmp_path):
    spec = yaml.safe_load(bundled_spec_path().read_text())
    oms = next(c for c in spec["components"] if c["name"] == "oms-service")
    oms["requests"]["memory_mib"] = 32  # the OMS idles above 60 MiB
    edited = tmp_path / "platform.yaml"
    edited.write_text(yaml.safe_dump(spec, sort_keys=False))
    try:
        result = cli("--spec", str(edited), "load", "run", "--profile", "smoke", "--service", "oms-service",
                     "--duration", "12", "--runtime", "local", "--name", NAME)
    finally:
        use_spec_file(None)
    assert result.exit_code == 1, result.output + result.stderr
    text = " ".join(result.stdout.split())
    assert re.search(r"oms-service: nominal: memory \d+ MiB at its peak above its request of 32 MiB "
                     r"\(nominal load must stay within the request\)", text), text


def test_demo_tours_the_running_platform_and_leaves_it_up(platform):
    """``demo`` on the module's platform: replay, smoke scenarios (when built), smoke load, one summary, still up."""
    result = cli("demo", "--runtime", "local", "--name", NAME, "--json")
    assert result.exit_code in (0, 1), result.output + result.stderr
    data = json.loads(result.stdout)
    steps = {s["name"]: s for s in data["steps"]}
    assert list(steps) == ["platform up", "replay v2-book10-majors", "smoke scenario suite", "smoke load profile"]
    assert steps["platform up"]["outcome"] == "passed"
    assert steps["replay v2-book10-majors"]["outcome"] == "passed", steps["replay v2-book10-majors"]
    assert steps["smoke scenario suite"]["outcome"] in ("passed", "failed", "skipped") and steps["smoke scenario suite"]["detail"]
    assert {v["service"] for v in data["load"]["verdicts"]} == set(SERVICES)
    assert Path(data["load"]["report"]).exists()
    assert set(SERVICES) <= set(data["urls"])
    assert (result.exit_code == 0) == data["passed"] == all(s["outcome"] != "failed" for s in data["steps"])
    status = json.loads(cli("status", "--runtime", "local", "--name", NAME, "--json").stdout)
    assert status["up"] is True
