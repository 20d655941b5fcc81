"""Replay control of the venue, without servers: request validation, session names, send stamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.venue.control import ConnectionLog, ReplayController, ReplayRequestError, _connection_id, parse_request


def test_parse_request_defaults() -> None:
    session, options, symbols = parse_request({"session": "v2-book10-majors"})
    assert session == "v2-book10-majors" and symbols is None
    assert options.speed == 1.0 and options.loop is False and options.start_on == "subscribe"


def test_parse_request_max_manual_and_symbols() -> None:
    _, options, symbols = parse_request({"session": "x", "max": True, "start": "manual", "symbols": ["BTC/USD"], "loop": True})
    assert options.speed is None and options.start_on == "manual" and options.loop is True
    assert symbols == ["BTC/USD"]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        {"session": ""},
        {"session": "x", "speed": 0},
        {"session": "x", "speed": "fast"},
        {"session": "x", "start": "later"},
        {"session": "x", "symbols": "BTC/USD"},
        {"session": "x", "rebase": "yes"},
        {"session": "x", "verify": 1},
    ],
)
def test_parse_request_refuses_bad_bodies(body: object) -> None:
    with pytest.raises(ReplayRequestError) as caught:
        parse_request(body)
    assert caught.value.status == 400


def test_resolve_names_and_paths(tmp_path: Path) -> None:
    (tmp_path / "mine.ndjson.gz").write_bytes(b"")
    controller = ReplayController("127.0.0.1", 0, fixtures_dir=tmp_path)
    assert controller.resolve("mine") == (tmp_path / "mine.ndjson.gz").resolve()
    assert controller.resolve(str(tmp_path / "mine.ndjson.gz")) == (tmp_path / "mine.ndjson.gz").resolve()
    with pytest.raises(ReplayRequestError) as caught:
        controller.resolve("other")
    assert caught.value.status == 404 and "shipped: mine" in str(caught.value)


def test_connection_log_stamps_in_order_and_reads_the_greeting() -> None:
    log = ConnectionLog(1)
    log.stamp('{"channel":"status","type":"update","data":[{"api_version":"v2","connection_id":123}]}')
    log.stamp('{"channel":"heartbeat"}')
    assert log.conn_id == 123 and log.frames == 2
    assert list(log.send_ns) == sorted(log.send_ns)
    assert log.as_dict()["frames_sent"] == 2


def test_connection_ids_of_both_versions() -> None:
    assert _connection_id('{"connectionID":77,"event":"systemStatus","status":"online"}') == 77
    assert _connection_id("not json") is None
    assert _connection_id('{"channel":"heartbeat"}') is None


def test_status_when_idle() -> None:
    assert ReplayController("127.0.0.1", 0).status() == {"state": "idle", "replay": None, "ws_port": 0}
