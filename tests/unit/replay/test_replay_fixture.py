"""The fixture format: round trips, manifests, and errors that name file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sandbox.replay.fixture import FixtureError, Record, read_session, write_session

STATUS = '{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online","api_version":"v2","connection_id":1}]}'
ACK = '{"method":"subscribe","result":{"channel":"book","depth":10,"snapshot":true,"symbol":"BTC/USD"},"success":true,"time_in":"2026-07-07T23:00:03.501510Z","time_out":"2026-07-07T23:00:03.501553Z"}'
SNAP = '{"channel":"book","type":"snapshot","data":[{"symbol":"BTC/USD","bids":[{"price":63501.6,"qty":0.00005100}],"asks":[{"price":63501.9,"qty":0.00100000}],"checksum":CS,"timestamp":"2026-07-07T23:00:03.947173Z"}]}'


def _snapshot() -> str:
    from sandbox.replay.book import V2Books, parse_frame

    books = V2Books()
    books.handle(parse_frame(SNAP.replace("CS", "0")))
    return SNAP.replace("CS", str(books.books["BTC/USD"].checksum()))


def _records() -> list[Record]:
    return [
        Record(1.0, "recv", STATUS),
        Record(1.1, "send", '{"method":"subscribe","params":{"channel":"book","symbol":["BTC/USD"]}}'),
        Record(1.2, "recv", ACK),
        Record(1.5, "recv", _snapshot()),
        Record(2.0, "recv", '{"channel":"heartbeat"}'),
    ]


@pytest.mark.parametrize("name", ["s.ndjson", "s.ndjson.gz"])
def test_round_trip_keeps_raw_text_and_counts(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    manifest = write_session(path, _records(), source="test")
    session = read_session(path)
    assert session.has_header and session.manifest == manifest
    assert [r.frame for r in session.records()] == [r.frame for r in _records()]
    assert [r.line for r in session.records()] == [2, 3, 4, 5, 6]
    assert '"qty":0.00005100' in list(session.records())[3].frame
    assert manifest.api == "v2" and manifest.symbols == ["BTC/USD"] and manifest.channels == ["book"]
    assert manifest.depths == {"BTC/USD": 10}
    assert manifest.directions == {"recv": 4, "send": 1}
    assert manifest.channel_counts == {"book": 1, "heartbeat": 1, "status": 1, "subscribe": 1}
    assert manifest.symbol_counts == {"book": {"BTC/USD": 1}}
    assert manifest.duration_s == pytest.approx(1.0)


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    write_session(tmp_path / "a.ndjson.gz", _records(), source="test")
    write_session(tmp_path / "b.ndjson.gz", _records(), source="test")
    assert (tmp_path / "a.ndjson.gz").read_bytes() == (tmp_path / "b.ndjson.gz").read_bytes()


def test_headerless_file_gets_a_derived_manifest(tmp_path: Path) -> None:
    path = tmp_path / "spool.ndjson"
    path.write_text("".join(json.dumps({"t": r.t, "dir": r.dir, "frame": r.frame}) + "\n" for r in _records()))
    session = read_session(path)
    assert not session.has_header
    assert session.manifest.frames == 5 and session.manifest.api == "v2"


def test_a_bad_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "bad.ndjson"
    write_session(path, _records(), source="test")
    lines = path.read_text().splitlines()
    lines[3] = '{"t": "soon", "dir": "recv", "frame": "{}"}'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FixtureError) as caught:
        list(read_session(path).records())
    assert caught.value.problems == [f"{path}:4: 't' must be epoch seconds, got 'soon'"]
    assert caught.value.exit_code == 2


def test_truncated_gzip_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.ndjson.gz"
    write_session(path, _records() * 200, source="test")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FixtureError) as caught:
        list(read_session(path).records())
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:") and "truncated gzip stream" in problem


def test_not_gzip_but_named_gz_is_read_as_text(tmp_path: Path) -> None:
    path = tmp_path / "plain.ndjson.gz"
    write_session(tmp_path / "x.ndjson", _records(), source="test")
    path.write_bytes((tmp_path / "x.ndjson").read_bytes())
    assert read_session(path).manifest.frames == 5
    assert gzip.decompress(gzip.compress(b"x")) == b"x"
