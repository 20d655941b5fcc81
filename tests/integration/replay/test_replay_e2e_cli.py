"""``aether-sandbox replay`` against real processes (venue feed, ingest, Tansu): output, JSON, exit codes.

The platform is located through the runtime's status in real use; here
``locate`` is pointed at processes this module starts, so the command runs
without a whole sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.ingest.harness import ReplayPlatform, replay_platform
from sandbox.replay.fixture import Record, read_session, write_session
from sandbox.replay.generator import GeneratorConfig, generate_file

pytestmark = pytest.mark.integration

runner = CliRunner()


@pytest.fixture(scope="module")
def platform(kafka_broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayPlatform]:
    with replay_platform(tmp_path_factory.mktemp("cli-platform"), kafka_broker.bootstrap) as running:
        yield running


@pytest.fixture(autouse=True)
def located(platform: ReplayPlatform, monkeypatch: pytest.MonkeyPatch) -> None:
    import sandbox.replay.run as run

    monkeypatch.setattr(run, "locate", lambda name="default", runtime="auto": platform.endpoints)


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-sessions") / "v1-small.ndjson.gz"
    generate_file(GeneratorConfig(api="v1", symbols=["XBT/USD", "ETH/USD"], channels=["book", "trade", "ticker"],
                                  duration_s=15, seed=5), path)
    return path


def test_replay_prints_the_verification_table(session: Path) -> None:
    result = runner.invoke(app, ["replay", str(session), "--max"])
    assert result.exit_code == 0, result.output
    assert "records per Kafka topic" in result.stdout
    assert "kraken.book.XBT-USD" in result.stdout
    assert "verified: nothing lost" in result.stdout


def test_replay_json(session: Path) -> None:
    result = runner.invoke(app, ["replay", str(session), "--max", "--json", "--symbols", "XBT/USD"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["failures"] == []
    assert set(report["topics"]) == {"kraken.book.XBT-USD", "kraken.trade.XBT-USD", "kraken.ticker.XBT-USD"}
    assert report["records_consumed"] == report["records_expected"]
    assert report["checksums_verified"] == report["checksums_expected"] > 0
    assert report["latency"]["joined"] == report["records_consumed"]


def test_a_corrupted_update_exits_1_and_is_reported(session: Path, tmp_path: Path) -> None:
    records, updates = [], 0
    for rec in read_session(session).records():
        frame = rec.frame
        if rec.dir == "recv" and '"c":"' in frame and frame.endswith('"book-10","XBT/USD"]'):
            updates += 1
            if updates == 30:  # a v1 update whose checksum no longer matches its book
                head, _, tail = frame.rpartition('"c":"')
                digits, _, rest = tail.partition('"')
                frame = f'{head}"c":"{(int(digits) + 7) % 2**32}"{rest}'
        records.append(Record(rec.t, rec.dir, frame))
    corrupted = tmp_path / "corrupted.ndjson.gz"
    write_session(corrupted, records)
    result = runner.invoke(app, ["replay", str(corrupted), "--max", "--json"])
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["checksums_failed"] == 1 and report["resubscribes"] == 1 and report["resyncs_completed"] == 1
    assert "1 book checksums failed" in report["failures"]
    assert "did not verify" in result.stderr
