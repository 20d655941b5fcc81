"""The ingest as a process: probes, metrics, reconnect with backoff after a disconnect, bad settings."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.infra.wait import wait_until
from sandbox.ingest.harness import ReplayPlatform, replay_platform
from sandbox.replay.generator import GeneratorConfig, generate_file
from sandbox.replay.run import call

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sessions") / "live-v2.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD"], channels=["book", "trade"], duration_s=30, seed=11), path)
    return path


@pytest.fixture
def platform(kafka_broker, tmp_path: Path) -> Iterator[ReplayPlatform]:
    with replay_platform(tmp_path, kafka_broker.bootstrap, ingest_env={"INGEST_SYMBOLS": "BTC/USD,ETH/USD"}) as running:
        yield running


def _live(platform: ReplayPlatform, session: Path, speed: float = 5.0) -> None:
    """Serve ``session`` looping at ``speed``, starting with the first subscription (a 'live' market)."""
    call("POST", f"{platform.endpoints.venue_url}/admin/replay", {"session": str(session), "speed": speed, "loop": True})


def _stats(platform: ReplayPlatform) -> dict:
    return call("GET", f"{platform.endpoints.ingest_url}/stats")


def _probe(platform: ReplayPlatform, check: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "INGEST_STATE_FILE": str(platform.state_file)}
    return subprocess.run([sys.executable, "-m", "sandbox.ingest.probe", check], env=env, capture_output=True, text=True, timeout=30)


def _wait(check, what: str, timeout: float = 30.0) -> None:
    wait_until(check, timeout=timeout, interval=0.1, what=what)


def test_probes_follow_the_connection(platform: ReplayPlatform, session: Path) -> None:
    # No session served yet: the WebSocket port is closed, the ingest retries; it is live, not ready.
    _wait(lambda: platform.state_file.exists(), "state file")
    assert _probe(platform, "live").returncode == 0
    not_ready = _probe(platform, "ready")
    assert not_ready.returncode == 1 and "not connected" in not_ready.stdout
    _live(platform, session)
    _wait(lambda: _stats(platform)["subscribed"] or "not subscribed", "subscribed")
    _wait(lambda: _probe(platform, "ready").returncode == 0 or "probe not ready", "ready probe", timeout=10)
    with urllib.request.urlopen(platform.endpoints.ingest_url + "/readyz") as response:  # noqa: S310 - loopback
        assert json.loads(response.read())["ready"] is True


def test_metrics_expose_the_counters(platform: ReplayPlatform, session: Path) -> None:
    _live(platform, session, speed=20.0)
    _wait(lambda: _stats(platform)["totals"]["checksums_verified"] > 50 or "few checksums yet", "checksums")
    _wait(lambda: _stats(platform)["totals"]["records_published"] > 50 or "few acknowledgements yet", "acks")
    with urllib.request.urlopen(platform.endpoints.ingest_url + "/metrics") as response:  # noqa: S310 - loopback
        text = response.read().decode()
    for name in ("ingest_frames_received_total", "ingest_records_published_total{topic=\"kraken.book.BTC-USD\"}",
                 "ingest_checksums_verified_total", "ingest_checksums_failed_total", "ingest_gaps_total",
                 "ingest_reconnects_total", "ingest_resubscribes_total", "ingest_publish_latency_seconds_bucket",
                 "ingest_feed_lag_seconds", "ingest_producer_queue", "ingest_connected 1.0"):
        assert name in text, name
    verified = float(re.search(r"^ingest_checksums_verified_total (\S+)$", text, re.M).group(1))
    assert verified > 50


def test_disconnect_reconnects_with_backoff_and_fresh_snapshots(platform: ReplayPlatform, session: Path) -> None:
    _live(platform, session)
    _wait(lambda: _stats(platform)["subscribed"] or "not subscribed", "subscribed")
    before = _stats(platform)["totals"]
    # The venue goes away: connection lost, then refused while it is down.
    platform.venue.stop()
    _wait(lambda: not _stats(platform)["connected"] or "still connected", "disconnect noticed")
    time.sleep(3.0)
    assert _probe(platform, "ready").returncode == 1
    assert _probe(platform, "live").returncode == 0
    platform.venue.start()
    _live(platform, session)
    _wait(lambda: _stats(platform)["subscribed"] or "not resubscribed", "resubscribed", timeout=30)
    _wait(lambda: _stats(platform)["totals"]["checksums_verified"] > before["checksums_verified"] + 20 or "no new checksums",
          "books verified after the reconnect")
    after = _stats(platform)["totals"]
    assert after["reconnects"] >= 2  # several attempts while the venue was down
    assert after["checksums_failed"] == 0 and after["crossed"] == 0
    # The delays grew: exponential backoff (with jitter, capped at INGEST_BACKOFF_MAX_S=2 here).
    log = platform.ingest.log_path.read_text()
    delays = [float(d) for d in re.findall(r"reconnecting in ([0-9.]+)s", log)]
    assert len(delays) >= 3, log[-2000:]
    assert max(delays) > 2 * min(delays)
    assert all(d <= 2.0 for d in delays)


def test_invalid_settings_exit_2_naming_the_variable(tmp_path: Path) -> None:
    env = {**os.environ, "INGEST_CHANNELS": "book,level4", "AETHER_PORT": "0", "INGEST_STATE_FILE": str(tmp_path / "s.json")}
    out = subprocess.run([sys.executable, "-m", "sandbox.ingest"], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "INGEST_CHANNELS" in out.stderr and "level4" in out.stderr
