"""``record``: capture from the local venue simulator (never the internet) into a valid fixture."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.replay.fixture import read_session
from sandbox.replay.generator import GeneratorConfig, generate_file
from sandbox.replay.record import RecordPlan, record_session
from sandbox.replay.validate import validate_file
from sandbox.venue.ws import ReplayOptions, VenueWsThread

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("record")
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD"], duration_s=20, seed=41), root / "v2.ndjson.gz")
    generate_file(GeneratorConfig(api="v1", symbols=["XBT/USD"], channels=["book", "trade", "ticker"], duration_s=20,
                                  seed=42), root / "v1.ndjson.gz")
    return {"v2": root / "v2.ndjson.gz", "v1": root / "v1.ndjson.gz"}


def test_record_v2_from_the_simulator(sessions: dict[str, Path], tmp_path: Path) -> None:
    with VenueWsThread(sessions["v2"], options=ReplayOptions(speed=10.0)) as venue:
        plan = RecordPlan(url=venue.url, symbols=["BTC/USD", "ETH/USD"], channels=["book", "trade", "ticker"],
                          duration_s=10, max_frames=300, ping_s=0.2)
        manifest = asyncio.run(record_session(plan, tmp_path / "rec.ndjson.gz"))
    assert manifest.api == "v2" and manifest.source == f"record {venue.url}"
    assert manifest.directions["recv"] == 300 and manifest.directions["send"] >= 3
    assert manifest.channel_counts["subscribe"] == 6 and manifest.channel_counts["status"] == 1
    assert manifest.depths == {"BTC/USD": 10, "ETH/USD": 10}
    assert not (tmp_path / "rec.ndjson.gz.partial").exists()
    report = validate_file(tmp_path / "rec.ndjson.gz")
    assert report.ok, report.problems
    assert report.checksums_ok > 50
    sent = [json.loads(r.frame) for r in read_session(tmp_path / "rec.ndjson.gz").records() if r.dir == "send"]
    assert sent[0] == {"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD", "ETH/USD"], "depth": 10}, "req_id": 1}


def test_record_v1_with_the_cli(sessions: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "v1.ndjson.gz"
    with VenueWsThread(sessions["v1"], options=ReplayOptions(speed=10.0)) as venue:
        result = CliRunner().invoke(app, [
            "record", "--url", venue.url, "--out", str(out), "--symbol", "XBT/USD", "--channel", "book",
            "--channel", "ticker", "--frames", "150", "--duration", "10", "--json",
        ])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["manifest"]["api"] == "v1" and doc["validation"]["ok"] is True
    assert doc["manifest"]["depths"] == {"XBT/USD": 10} and doc["validation"]["checksums_ok"] > 20


def test_recording_a_closed_port_is_an_environment_problem(tmp_path: Path) -> None:
    from sandbox.errors import EnvironmentProblem
    from sandbox.infra.ports import free_port

    plan = RecordPlan(url=f"ws://127.0.0.1:{free_port()}/v2", symbols=["BTC/USD"], duration_s=1)
    with pytest.raises(EnvironmentProblem, match="cannot record"):
        asyncio.run(record_session(plan, tmp_path / "x.ndjson.gz"))
    assert not list(tmp_path.iterdir())
