"""Validation: every problem as file:line, and a bad line never hides the next."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from sandbox.replay.fixture import read_session, write_session
from sandbox.replay.validate import validate_file


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return fh.read().splitlines()


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_generated_sessions_are_valid(v2_session: Path, v1_session: Path) -> None:
    for path in (v2_session, v1_session):
        report = validate_file(path)
        assert report.ok, report.problems
        assert report.checksums_ok > 100


def test_each_broken_line_is_reported_and_the_rest_still_checked(v2_session: Path, tmp_path: Path) -> None:
    lines = _lines(v2_session)
    book_lines = [i for i, line in enumerate(lines) if '\\"channel\\":\\"book\\",\\"type\\":\\"update' in line]
    first, second = book_lines[3], book_lines[-3]
    lines[first] = lines[first][:40]  # cut mid-record: not JSON
    record = json.loads(lines[second])
    record["frame"] = record["frame"].replace('"checksum":', '"checksum":1', 1)
    lines[second] = json.dumps(record)
    odd = json.dumps({"t": 1e10, "dir": "recv", "frame": '{"channel":"level9","type":"update","data":[]}'})
    lines.insert(len(lines) - 1, odd)
    path = _write(tmp_path / "broken.ndjson", lines)
    report = validate_file(path)
    messages = "\n".join(report.problems)
    assert f"{path}:{first + 1}: line is not JSON" in messages
    assert f"{path}:{second + 1}: " in messages and "checksum mismatch" in messages
    assert f"{path}:{len(lines) - 1}: unknown channel 'level9'" in messages
    assert f"{path}:{len(lines)}: receive time goes backwards" in messages
    assert f"{path}:1: manifest channel_counts says" in messages
    assert report.checksums_ok > 100  # lines after the broken ones were still verified


def test_a_frame_that_is_not_json_is_named(v1_session: Path, tmp_path: Path) -> None:
    lines = _lines(v1_session)
    record = json.loads(lines[5])
    record["frame"] = "[1,{oops"
    lines[5] = json.dumps(record)
    report = validate_file(_write(tmp_path / "bad-frame.ndjson", lines))
    assert any(p.startswith(f"{tmp_path / 'bad-frame.ndjson'}:6: frame is not JSON") for p in report.problems)


def test_update_before_snapshot_and_mixed_versions(tmp_path: Path) -> None:
    from sandbox.replay.fixture import Record

    records = [
        Record(1.0, "recv", '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[],"asks":[],"checksum":0}]}'),
        Record(2.0, "recv", '{"event":"heartbeat"}'),
    ]
    path = tmp_path / "mixed.ndjson"
    write_session(path, records, source="test")
    report = validate_file(path)
    assert report.problems == [
        f"{path}:2: book update for BTC/USD before any snapshot",
        f"{path}:3: a v1 frame in a v2 session",
    ]


def test_truncated_gzip_is_a_problem_not_a_crash(v2_session: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.ndjson.gz"
    data = v2_session.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    report = validate_file(cut)
    assert not report.ok
    assert "truncated gzip stream" in report.problems[-1] and report.problems[-1].startswith(f"{cut}:")
    assert report.frames > 0


def test_manifest_of_a_valid_file_is_reported(v2_session: Path) -> None:
    report = validate_file(v2_session)
    assert report.manifest == read_session(v2_session).manifest
    assert report.as_dict()["ok"] is True
