"""The venue writes its data frames itself: byte for byte what websockets would write."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from sandbox.venue.control import ConnectionLog
from sandbox.venue.ws import _text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 200_000])
def test_text_frame_equals_websockets_serialisation(size: int) -> None:
    payload = ("é" * size).encode()[:size]  # multi-byte UTF-8, cut anywhere: the length is in bytes
    assert _text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


def test_a_batch_gets_one_send_time_per_frame_and_the_greeting_names_the_connection() -> None:
    log = ConnectionLog(1)
    log.stamp_batch(['{"channel":"status","type":"update","data":[{"connection_id":42}]}', "{}", "{}"])
    log.stamp_batch([])
    log.stamp_batch(["{}"])
    assert log.conn_id == 42
    assert log.frames == 4 and len(log.send_ns) == 4
    assert log.send_ns[0] == log.send_ns[2] <= log.send_ns[3]
