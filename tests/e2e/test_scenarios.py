"""Scenario suites end to end: a local platform brought up once, the shipped suite through the CLI.

One module-scoped platform (the components scenarios need, kernel-assigned
ports, a private state root) serves every test here, on one xdist worker.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.runtimes.base import STOPPED_DETAIL
from sandbox.scenarios import SCENARIOS_DIR
from sandbox.scenarios.loader import load_all
from sandbox.scenarios.platform import connect

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("scenarios")]

runner = CliRunner()
NAME = "scenarios-e2e"
WRONG = Path(__file__).parent / "scenarios" / "wrong-expectation.yaml"


@pytest.fixture(scope="module")
def platform():
    """The platform's trading path (the OMS and everything it depends on) up, then down and removed."""
    root = Path(tempfile.mkdtemp(prefix="aether-scenarios-"))
    root.chmod(0o711)
    saved = {k: os.environ.get(k) for k in ("AETHER_SANDBOX_HOME", "AETHER_SANDBOX_PORTS")}
    os.environ["AETHER_SANDBOX_HOME"] = str(root)
    os.environ["AETHER_SANDBOX_PORTS"] = "dynamic"
    try:
        result = runner.invoke(app, ["up", "oms-service", "--runtime", "local", "--name", NAME, "--timeout", "300"])
        assert result.exit_code == 0, result.output + result.stderr
        yield NAME
    finally:
        runner.invoke(app, ["down", "--runtime", "local", "--name", NAME, "--volumes"])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def run(*args: str):
    return runner.invoke(app, ["scenario", "run", *args, "--runtime", "local", "--name", NAME])


def test_the_shipped_suite_passes_and_writes_junit(platform, tmp_path) -> None:
    junit = tmp_path / "scenarios.xml"
    shipped = len(load_all([SCENARIOS_DIR]))
    result = run(str(SCENARIOS_DIR), "--parallel", "3", "--junit", str(junit))
    assert result.exit_code == 0, result.stdout + result.stderr
    assert f"{shipped} passed, 0 failed, 0 errors of {shipped} scenarios" in " ".join(result.stdout.split())
    root = ET.parse(junit).getroot()
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", str(shipped), "0", "0")
    cases = root.findall(".//testcase")
    assert len(cases) == shipped >= 25 and not root.findall(".//failure")
    assert {s.get("name") for s in root.iter("testsuite")} >= {"smoke", "lifecycle", "rejects", "venue", "recovery"}


def test_a_wrong_expectation_fails_with_a_readable_explanation(platform) -> None:
    result = run(str(WRONG))
    assert result.exit_code == 1
    text = " ".join(result.stdout.split())
    assert "deliberately wrong expectation" in text
    assert "[expect[0] order] expected: order buy: state 'filled', avg_price '30000'" in text
    assert "happened: avg_price: expected '30000', got '30004'" in text
    assert "[expect[1] fills] expected: fills of buy: count 1 happened: count: expected 1, got 2" in text
    assert "relevant events:" in text and "buy: kafka oms.fills: fill 0.30000000 @ 30000.0" in text
    assert "0 passed, 1 failed, 0 errors of 1 scenarios" in text


def test_a_suite_run_twice_gives_identical_results(platform) -> None:
    first, second = (run(str(SCENARIOS_DIR / "smoke"), "--json") for _ in range(2))
    assert first.exit_code == 0 and second.exit_code == 0, first.stdout + second.stdout
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["run_id"] != b["run_id"] and a["passed"] == a["total"] >= 3
    assert a["normalised"] == b["normalised"]


def test_outages_syncs_and_delistings_are_undone_when_their_scenarios_end(platform) -> None:
    rejects = SCENARIOS_DIR / "rejects"
    files = ("policy-permissions-unavailable.yaml", "risk-capital-unavailable.yaml", "policy-delisted.yaml",
             "policy-venue-limit-post-only.yaml")
    result = run(*(str(rejects / f) for f in files), "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["passed"] == len(files)
    sandbox = connect(platform, "local")
    status = {c.name: c for c in sandbox.runtime.status().components}
    for name in ("secrets-service", "capital-allocator"):  # stopped by their scenarios, started again: not held
        assert (status[name].state, status[name].health) == ("running", "healthy"), status[name]
        assert STOPPED_DETAIL not in status[name].detail
    with sandbox.client() as http:
        auth = {"Authorization": f"Bearer {sandbox.admin_token(http)}"}
        universe = sandbox.url("universe-service") + "/v1/instruments/"
        eth_xbt = http.get(universe + "ETHXBT", headers=auth).json()
        sol_usd = http.get(universe + "SOLUSD", headers=auth).json()
        assets = http.get(sandbox.url("kraken-venue") + "/0/public/AssetPairs").json()["result"]
    assert (eth_xbt["listed"], eth_xbt["status"]) == (True, "online")  # relisted at the venue and synced
    assert sol_usd["status"] == "online" and "XETHXXBT" in assets


def test_a_sandbox_that_is_not_up_is_a_typed_error_with_a_hint(platform) -> None:
    result = runner.invoke(app, ["scenario", "run", str(SCENARIOS_DIR / "smoke"), "--runtime", "local",
                                 "--name", "never-started"])
    assert result.exit_code == 3
    assert "is not running what scenarios need" in result.stderr and "aether-sandbox up --name never-started" in result.stderr
