"""Replays through the real path: venue WebSocket server -> ingest process -> Tansu, counted by consuming.

Every shipped fixture and the real Kraken captures of ``../shared`` must replay
with every checksum verified and exactly the manifest's records in each topic;
an injected checksum corruption must be detected, counted and recovered from
with a resubscribe.  Replays run at ``--max`` to keep the suite quick.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.errors import CheckFailed, InvalidInput
from sandbox.ingest.harness import ReplayPlatform, replay_platform
from sandbox.replay.fixture import Record, read_session, write_session
from sandbox.replay.generator import GeneratorConfig, generate_file
from sandbox.replay.run import FIXTURES, ReplayRequest, replay, verdict

pytestmark = pytest.mark.integration

SHIPPED = sorted(FIXTURES.glob("*.ndjson*")) if FIXTURES.is_dir() else []
CONFORMANCE = "kraken-conformance"


@pytest.fixture(scope="module")
def platform(kafka_broker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplayPlatform]:
    """The venue feed and a real ingest process on the session's Tansu broker."""
    with replay_platform(tmp_path_factory.mktemp("replay-platform"), kafka_broker.bootstrap) as running:
        yield running


def _replay(platform: ReplayPlatform, session: str | Path, **kwargs):
    return replay(platform.endpoints, ReplayRequest(str(session), speed=None, timeout_s=90, **kwargs))


def _assert_verified(report) -> None:
    assert report.failures() == [], report.as_dict()
    for topic, count in report.topics.items():
        assert count.consumed == count.expected, topic
        assert count.seq_gaps == count.seq_back == 0, topic
    assert report.records_consumed == report.records_expected > 0
    assert report.checksums_failed == 0
    assert report.checksums_verified == report.checksums_expected
    assert report.latency["joined"] == report.records_consumed  # every record has its end-to-end latency
    assert report.latency["p50"] is not None and report.latency["p50"] > 0


def test_fixtures_are_shipped() -> None:
    assert SHIPPED, f"no replay sessions in {FIXTURES}"


@pytest.mark.parametrize("fixture", SHIPPED, ids=lambda p: p.name.split(".")[0])
def test_shipped_fixture_replays_verified(platform: ReplayPlatform, fixture: Path) -> None:
    report = _replay(platform, fixture)
    _assert_verified(report)
    manifest = read_session(fixture).manifest
    assert set(report.symbols) == set(manifest.symbols)
    assert report.frames_played > 0 and report.reconnects == 0
    verdict(report)  # does not raise


@pytest.mark.shared
def test_real_v2_capture_replays_with_every_exchange_checksum(platform: ReplayPlatform, shared_dir: Path, tmp_path: Path) -> None:
    from sandbox.replay.importers import import_capture

    src = shared_dir / CONFORMANCE / "flashbook_kraken_v2_book10_trade_btcusd_ethusd_20260707.ndjson"
    fixture = tmp_path / "flashbook-v2.ndjson.gz"
    import_capture(src, fixture)
    report = _replay(platform, fixture)
    _assert_verified(report)
    assert report.checksums_verified == 2962  # 2 snapshots + 2,960 updates, each with Kraken's own checksum
    assert report.api == "v2"


@pytest.mark.shared
def test_real_v1_capture_replays_with_every_exchange_checksum(platform: ReplayPlatform, shared_dir: Path, tmp_path: Path) -> None:
    from sandbox.replay.importers import import_capture

    src = shared_dir / CONFORMANCE / "pykrakensdk_v1_book10_xbtusd_20230830.json"
    fixture = tmp_path / "pykrakensdk-v1.ndjson.gz"
    import_capture(src, fixture)
    report = _replay(platform, fixture)
    _assert_verified(report)
    assert report.checksums_verified == 979  # every v1 update's "c"
    assert report.api == "v1"


@pytest.fixture(scope="module")
def small_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sessions") / "small-v2.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD"], channels=["book", "trade"], duration_s=20, seed=7), path)
    return path


def _corrupt_one_checksum(src: Path, dest: Path, symbol: str, nth: int) -> int:
    """Copy ``src`` with the checksum of ``symbol``'s ``nth`` book update changed; returns its line."""
    records, seen, line = [], 0, 0
    for rec in read_session(src).records():
        if rec.dir == "recv" and '"channel":"book","type":"update"' in rec.frame and f'"symbol":"{symbol}"' in rec.frame:
            seen += 1
            if seen == nth:
                head, _, tail = rec.frame.partition('"checksum":')
                digits = tail[: len(tail) - len(tail.lstrip("0123456789"))]
                rec = dataclasses.replace(rec, frame=f'{head}"checksum":{(int(digits) + 1) % 2**32}{tail[len(digits):]}')
                line = rec.line
        records.append(Record(rec.t, rec.dir, rec.frame))
    write_session(dest, records, source="test: one corrupted checksum")
    return line


def test_corrupted_update_is_detected_resubscribed_and_recovered(platform: ReplayPlatform, small_session: Path, tmp_path: Path) -> None:
    corrupted = tmp_path / "corrupted.ndjson.gz"
    assert _corrupt_one_checksum(small_session, corrupted, "BTC/USD", 40)
    report = _replay(platform, corrupted)
    assert report.checksums_failed == 1
    assert report.resubscribes == 1
    assert report.resyncs_completed == 1  # a fresh snapshot came and verified
    book = report.topics["kraken.book.BTC-USD"]
    # Nothing was lost between the ingest and Kafka, and the books verified again after the snapshot.
    assert book.consumed == book.acked and book.seq_gaps == 0
    assert book.snapshots == 2
    assert report.topics["kraken.book.ETH-USD"].consumed == report.topics["kraken.book.ETH-USD"].expected
    assert report.checksums_verified > 0
    with pytest.raises(CheckFailed, match="checksums failed"):
        verdict(report)
    # ...and the next clean replay verifies completely: the ingest recovered.
    _assert_verified(_replay(platform, small_session))


def test_symbol_subset(platform: ReplayPlatform, small_session: Path) -> None:
    report = _replay(platform, small_session, symbols=("ETH/USD",))
    _assert_verified(report)
    assert set(report.topics) == {"kraken.book.ETH-USD", "kraken.trade.ETH-USD"}


def test_paced_replay_reports_its_rate(platform: ReplayPlatform, small_session: Path) -> None:
    report = replay(platform.endpoints, ReplayRequest(str(small_session), speed=20.0, timeout_s=60))
    _assert_verified(report)
    assert report.requested_rate and report.achieved_rate
    assert 0.8 < report.achieved_rate / report.requested_rate < 1.2
    assert report.replay_duration_s == pytest.approx(report.session_duration_s / 20, rel=0.2)


def test_bad_fixture_is_refused_naming_file_and_line(platform: ReplayPlatform, small_session: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    records = list(read_session(small_session).records())
    text = [json.dumps({"t": r.t, "dir": r.dir, "frame": r.frame}) for r in records[:30]]
    text[20] = '{"t": 1.0, "dir": "recv", "frame": "{not json"}'
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(InvalidInput) as caught:
        _replay(platform, bad)
    assert any(p.startswith(f"{bad}:21:") for p in caught.value.problems), caught.value.problems
