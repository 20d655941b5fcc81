"""``aether-sandbox replay``: bad input exits 2 naming file and line before anything runs; the report renders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.cli.replay_cmd import _print
from sandbox.replay.verify import ReplayReport, TopicCount, end_to_end, expected_counts

runner = CliRunner()

GOOD_FRAME = '{"channel":"heartbeat"}'


def _line(frame: str, t: float = 1.0) -> str:
    return json.dumps({"t": t, "dir": "recv", "frame": frame})


def test_non_json_frame_exits_2_with_file_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.ndjson"
    bad.write_text("\n".join([_line(GOOD_FRAME), _line(GOOD_FRAME, 2.0), _line("{nope", 3.0)]) + "\n")
    result = runner.invoke(app, ["replay", str(bad), "--max"])
    assert result.exit_code == 2, result.output
    assert f"{bad}:3:" in result.output


def test_unknown_channel_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "chan.ndjson"
    bad.write_text(_line('{"channel":"level4","type":"update","data":[{"symbol":"BTC/USD"}]}') + "\n")
    result = runner.invoke(app, ["replay", str(bad)])
    assert result.exit_code == 2, result.output
    assert f"{bad}:1:" in result.output and "level4" in result.output


def test_truncated_gzip_exits_2(tmp_path: Path) -> None:
    import gzip

    data = gzip.compress(("\n".join(_line(GOOD_FRAME, float(i)) for i in range(2000)) + "\n").encode())
    bad = tmp_path / "cut.ndjson.gz"
    bad.write_bytes(data[: len(data) // 2])
    result = runner.invoke(app, ["replay", str(bad)])
    assert result.exit_code == 2, result.output
    assert "cut.ndjson.gz" in result.output


def test_unknown_session_exits_2() -> None:
    result = runner.invoke(app, ["replay", "no-such-session"])
    assert result.exit_code == 2
    assert "no session 'no-such-session'" in result.output


def test_zero_speed_exits_2(tmp_path: Path) -> None:
    ok = tmp_path / "ok.ndjson"
    ok.write_text(_line(GOOD_FRAME) + "\n")
    assert runner.invoke(app, ["replay", str(ok), "--speed", "0"]).exit_code == 2


def test_expected_counts_map_the_manifest_to_topics() -> None:
    counts = {"book": {"XBT/USD": 10, "ETH/USD": 5}, "trade": {"XBT/USD": 3}, "ticker": {"XBT/USD": 7}}
    assert expected_counts(counts, ["book", "trade"], ["XBT/USD"]) == {"kraken.book.XBT-USD": 10, "kraken.trade.XBT-USD": 3}


def test_end_to_end_joins_records_to_send_times() -> None:
    acks = {"t": {"ack_ns": [3_000_000, 9_000_000, 50], "frame_ref": [(1 << 32) | 2, (1 << 32) | 3, (2 << 32) | 1],
                  "connections": {"1": 77, "2": 88}}}
    result = end_to_end(acks, {77: [0, 1_000_000, 2_000_000]})
    assert result["joined"] == 2 and result["unjoined"] == 1  # connection 88 has no send log
    assert result["p50"] == 2.0 and result["max"] == 7.0


def _report(**kwargs) -> ReplayReport:
    report = ReplayReport("s.ndjson.gz", "v2", "run-1", None, ["BTC/USD"], ["book"], 10, **kwargs)
    report.topics = {"kraken.book.BTC-USD": TopicCount("kraken.book.BTC-USD", expected=5, acked=5, consumed=5, first_seq=1, last_seq=5)}
    report.checksums_verified = report.checksums_expected = 5
    return report


def test_a_clean_report_verifies_and_renders(capsys: pytest.CaptureFixture[str]) -> None:
    report = _report(latency={"p50": 1.5, "p90": 2.0, "p99": 3.0, "max": 4.0, "joined": 5})
    assert report.ok
    _print(report)
    out = capsys.readouterr().out
    assert "kraken.book.BTC-USD" in out and "verified" in out


@pytest.mark.parametrize(
    ("change", "failure"),
    [
        ({"checksums_failed": 1}, "book checksums failed"),
        ({"reconnects": 1}, "reconnects"),
        ({"gaps": 2}, "trade-id gaps"),
    ],
)
def test_any_loss_or_failed_check_fails_the_verdict(change: dict, failure: str) -> None:
    report = _report(**change)
    assert any(failure in f for f in report.failures())


def test_lost_and_reordered_records_fail_the_verdict() -> None:
    report = _report()
    t = report.topics["kraken.book.BTC-USD"]
    t.consumed, t.seq_gaps = 4, 1
    assert any("consumed 4 records" in f for f in report.failures())
    assert any("sequence numbers missing" in f for f in report.failures())
