"""Records written with msgspec (text-token payloads, the ingest's) are byte for byte the json encoder's."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.ingest.feed import parse_frame
from sandbox.ingest.normalise import Normaliser, messages_of
from sandbox.replay.fixture import read_session
from sandbox.replay.generator import GeneratorConfig, generate_file


@pytest.mark.parametrize("api", ["v2", "v1"])
def test_every_record_of_a_session_is_the_same_bytes(tmp_path: Path, api: str) -> None:
    path = tmp_path / f"{api}.ndjson.gz"
    symbols = ["BTC/USD", "ETH/USD"] if api == "v2" else ["XBT/USD", "ETH/USD"]
    channels = ["book", "trade", "ticker", "ohlc"]
    generate_file(GeneratorConfig(api=api, symbols=symbols, channels=channels, duration_s=20, seed=4), path)
    plain, general = Normaliser(api=api, run="r", text_tokens=True), Normaliser(api=api, run="r")
    seen: set[str] = set()
    for record in read_session(path).records():
        if record.dir != "recv":
            continue
        msg = parse_frame(record.frame)
        for channel, symbol, kind, payload in messages_of(msg):
            assert plain.record(channel, symbol, kind, payload, 7) == general.record(channel, symbol, kind, payload, 7)
            seen.add(channel)
    assert seen >= {"book", "trade", "ticker", "ohlc"}


def test_odd_text_is_escaped_the_same() -> None:
    frame = ('{"channel":"trade","type":"update","data":[{"symbol":"X/Y","side":"b\\"uy\\n\\u0001\\u00e9\\u2028\\ud83d\\ude00",'
             '"price":1.50,"qty":5,"ord_type":"limit","trade_id":123456789012345678901234,"timestamp":"t"}]}')
    (channel, symbol, kind, payload), = messages_of(parse_frame(frame))
    plain, general = Normaliser(text_tokens=True), Normaliser()
    assert plain.record(channel, symbol, kind, payload, 1) == general.record(channel, symbol, kind, payload, 1)
