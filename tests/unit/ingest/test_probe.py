"""The exec probes and their state file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sandbox.ingest import probe, statefile

REPO = Path(__file__).resolve().parents[3]


def test_default_path_is_per_sandbox_and_port() -> None:
    a = statefile.default_path({"AETHER_SANDBOX": "one", "AETHER_PORT": "18090"})
    b = statefile.default_path({"AETHER_SANDBOX": "two", "AETHER_PORT": "18090"})
    assert a != b and a.endswith("aether-ingest-one-18090.json")
    assert statefile.default_path({"INGEST_STATE_FILE": "/x/y.json"}) == "/x/y.json"


def test_state_round_trip(tmp_path: Path) -> None:
    path = str(tmp_path / "s.json")
    statefile.write_state(path, {"heartbeat": 5.0, "connected": True})
    assert statefile.read_state(path) == {"heartbeat": 5.0, "connected": True}
    assert not list(tmp_path.glob("*.tmp"))


def test_unreadable_state_is_none(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{half")
    assert statefile.read_state(str(tmp_path / "bad.json")) is None
    assert statefile.read_state(str(tmp_path / "missing.json")) is None


@pytest.mark.parametrize(
    ("state", "check", "ok", "why"),
    [
        (None, "live", False, "no state file"),
        ({"heartbeat": 100.0}, "live", True, "heartbeat"),
        ({"heartbeat": 50.0}, "live", False, "stuck"),
        ({"heartbeat": "x"}, "live", False, "no valid heartbeat"),
        ({"heartbeat": 100.0, "connected": False, "detail": "refused"}, "live", True, "heartbeat"),
        ({"heartbeat": 100.0, "connected": False, "detail": "refused"}, "ready", False, "refused"),
        ({"heartbeat": 100.0, "connected": True, "subscribed": False}, "ready", False, "not all acknowledged"),
        ({"heartbeat": 100.0, "connected": True, "subscribed": True}, "ready", True, "subscribed"),
        ({"heartbeat": 50.0, "connected": True, "subscribed": True}, "ready", False, "stuck"),
    ],
)
def test_evaluate(state: dict | None, check: str, ok: bool, why: str) -> None:
    result, reason = statefile.evaluate(state, check, now=101.0, max_age_s=15)
    assert result is ok
    assert why in reason


def test_unknown_check_is_refused() -> None:
    with pytest.raises(ValueError):
        statefile.evaluate({}, "alive")


def test_probe_main_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "state.json"
    monkeypatch.setenv("INGEST_STATE_FILE", str(path))
    assert probe.main(["live"]) == 1
    statefile.write_state(str(path), {"heartbeat": time.time(), "connected": True, "subscribed": False})
    assert probe.main(["live"]) == 0
    assert probe.main(["ready"]) == 1
    assert "not all acknowledged" in capsys.readouterr().out
    statefile.write_state(str(path), {"heartbeat": time.time() - 30, "connected": True, "subscribed": True})
    assert probe.main(["ready"]) == 1
    assert probe.main(["ready", "--max-age", "60"]) == 0
    assert probe.main(["bogus"]) == 2
    assert probe.main([]) == 2


def test_probe_imports_only_the_standard_library(tmp_path: Path) -> None:
    """The probe runs every few seconds under 100m CPU: it must not import the ingest's dependencies."""
    code = (
        "import sys, runpy; sys.argv=['probe','live']\n"
        "try:\n    runpy.run_module('sandbox.ingest.probe', run_name='__main__')\nexcept SystemExit: pass\n"
        "heavy=[m for m in ('pydantic','confluent_kafka','websockets','prometheus_client','sandbox.replay') if m in sys.modules]\n"
        "print('heavy=' + ','.join(heavy))"
    )
    env = {**os.environ, "INGEST_STATE_FILE": str(tmp_path / "none.json")}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "heavy="
