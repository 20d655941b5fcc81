"""Importers: each accepted capture format, pacing without receive times, named errors."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from sandbox.replay.fixture import FixtureError, read_session
from sandbox.replay.importers import detect_format, import_capture, load_records
from sandbox.replay.validate import validate_file

CONFORMANCE = "kraken-conformance"
FLASHBOOK = "flashbook_kraken_v2_book10_trade_btcusd_ethusd_20260707.ndjson"
PYKRAKENSDK = "pykrakensdk_v1_book10_xbtusd_20230830.json"
STATUS = '{"channel":"status","type":"update","data":[{"version":"2.0.10","system":"online","api_version":"v2","connection_id":1}]}'
HEARTBEAT = '{"channel":"heartbeat"}'
TRADE = '{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":63501.9,"qty":0.00004100,"ord_type":"limit","trade_id":1,"timestamp":"2026-07-07T23:00:0%dZ"}]}'


def _frames() -> list[str]:
    return [STATUS, TRADE % 1, HEARTBEAT, HEARTBEAT, TRADE % 4, HEARTBEAT]


def test_plain_ndjson_is_paced_by_exchange_timestamps(tmp_path: Path) -> None:
    src = tmp_path / "capture.ndjson"
    src.write_text("\n".join(_frames()) + "\n")
    assert detect_format(src) == "ndjson"
    records = load_records(src)
    assert [r.frame for r in records] == _frames()  # byte for byte
    base = records[1].t
    assert [round(r.t - base, 6) for r in records] == [0.0, 0.0, 1.0, 2.0, 3.0, 3.0]  # interpolated, clamped
    assert [r.line for r in records] == [1, 2, 3, 4, 5, 6]


def test_json_array_keeps_number_tokens(tmp_path: Path) -> None:
    src = tmp_path / "capture.json"
    pretty = "[\n" + ",\n".join(json.dumps(json.loads(f), indent=2) for f in _frames()) + "\n]\n"
    src.write_text(pretty.replace("4.1e-05", "0.00004100"))
    assert detect_format(src) == "json-array"
    records = load_records(src)
    assert records[1].frame == TRADE % 1  # compact again, every number token as written
    assert records[2].line == pretty.count("\n", 0, pretty.index('{\n  "channel": "heartbeat"')) + 1


def test_pykrakensdk_object_and_cryptofeed_raw_lines(tmp_path: Path) -> None:
    v1 = [{"event": "systemStatus", "status": "online"}, {"event": "heartbeat"}]
    src = tmp_path / "sdk.json"
    src.write_text(json.dumps({"init": v1[:1], "updates": v1[1:]}, indent=2))
    assert detect_format(src) == "pykrakensdk"
    assert [json.loads(r.frame)["event"] for r in load_records(src)] == ["systemStatus", "heartbeat"]

    raw = tmp_path / "KRAKEN.0"
    raw.write_text(
        "configuration: {'log': {}}\n"
        "wss://ws.kraken.com/v2 <-> 1783465200.0\n"
        'wss://ws.kraken.com/v2 <- 1783465200.1: {"method":"subscribe","params":{"channel":"trade","symbol":["BTC/USD"]}}\n'
        f"1783465200.2: {STATUS}\n"
        f"1783465200.3: {TRADE % 1}\n"
    )
    assert detect_format(raw) == "cryptofeed"
    records = load_records(raw)
    assert [(r.t, r.dir) for r in records] == [(1783465200.1, "send"), (1783465200.2, "recv"), (1783465200.3, "recv")]
    assert records[2].frame == TRADE % 1 and records[2].line == 5


def test_import_writes_a_valid_fixture(tmp_path: Path) -> None:
    src = tmp_path / "capture.ndjson.gz"
    src.write_bytes(gzip.compress(("\n".join(_frames()) + "\n").encode()))
    manifest = import_capture(src, tmp_path / "out.ndjson.gz")
    assert manifest.source == "import ndjson capture.ndjson.gz"
    assert manifest.channel_counts == {"heartbeat": 3, "status": 1, "trade": 2}
    assert validate_file(tmp_path / "out.ndjson.gz").ok


def test_invalid_capture_names_file_and_line_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "capture.ndjson"
    src.write_text("\n".join([STATUS, '{"channel":"trade"', HEARTBEAT]) + "\n")
    with pytest.raises(FixtureError) as caught:
        import_capture(src, tmp_path / "out.ndjson.gz")
    assert caught.value.problems == [f"{src}:2: frame is not JSON (Expecting ',' delimiter)"]
    assert not (tmp_path / "out.ndjson.gz").exists()

    src.write_text("\n".join([STATUS, '{"channel":"candles","type":"update","data":[]}']) + "\n")
    with pytest.raises(FixtureError) as caught:
        import_capture(src, tmp_path / "out.ndjson.gz")
    assert caught.value.problems == [f"{src}:2: unknown channel 'candles'"]


def test_truncated_gzip_capture_is_named(tmp_path: Path) -> None:
    src = tmp_path / "capture.ndjson.gz"
    data = gzip.compress(("\n".join(_frames() * 300) + "\n").encode())
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(FixtureError) as caught:
        import_capture(src, tmp_path / "out.ndjson.gz")
    assert "truncated gzip stream" in caught.value.problems[0]


@pytest.mark.shared
def test_flashbook_capture_imports_with_every_checksum_verifying(shared_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / CONFORMANCE / FLASHBOOK
    manifest = import_capture(src, tmp_path / "flashbook.ndjson.gz")
    assert manifest.api == "v2" and manifest.frames == 3000
    assert manifest.channel_counts == {"book": 2962, "heartbeat": 23, "status": 1, "subscribe": 4, "trade": 10}
    assert manifest.depths == {"BTC/USD": 10, "ETH/USD": 10}
    assert 21 < manifest.duration_s < 23
    frames = [r.frame for r in read_session(tmp_path / "flashbook.ndjson.gz").records()]
    assert frames == src.read_text().splitlines()  # byte for byte
    report = validate_file(tmp_path / "flashbook.ndjson.gz")
    assert report.ok and report.checksums_ok == 2962


@pytest.mark.shared
def test_pykrakensdk_capture_imports_with_every_checksum_verifying(shared_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / CONFORMANCE / PYKRAKENSDK
    manifest = import_capture(src, tmp_path / "sdk.ndjson.gz")
    assert manifest.api == "v1" and manifest.symbols == ["XBT/USD"] and manifest.depths == {"XBT/USD": 10}
    assert manifest.symbol_counts["book"] == {"XBT/USD": 980}
    assert manifest.channel_counts["heartbeat"] == 152
    report = validate_file(tmp_path / "sdk.ndjson.gz")
    assert report.ok and report.checksums_ok == 979
