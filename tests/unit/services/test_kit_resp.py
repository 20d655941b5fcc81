"""The kit's RESP parser and encoder (session cache and OMS claims): replies, pushes, messages cut by the network,
and what ``RawRedis`` hands its callers (no servers)."""

from __future__ import annotations

import pytest

from sandbox.services.kit.resp import ResponseError, _Incomplete, _Push, _text, command, parse

HELLO = (b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$5\r\nproto\r\n:3\r\n$7\r\nmodules\r\n*0\r\n")
INVALIDATE = b">2\r\n$10\r\ninvalidate\r\n*2\r\n$14\r\nauth:session:a\r\n$14\r\nauth:session:b\r\n"


def test_replies_and_pushes_parse_in_stream_order() -> None:
    stream = b":1200\r\n" + INVALIDATE + b":-2\r\n+OK\r\n-ERR nope\r\n_\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n" + HELLO
    values, pos = [], 0
    while pos < len(stream):
        value, pos = parse(stream, pos)
        values.append(value)
    assert values[0] == 1200 and values[2] == -2 and values[3] == "OK"
    assert type(values[1]) is _Push and values[1] == [b"invalidate", [b"auth:session:a", b"auth:session:b"]]
    assert isinstance(values[4], ResponseError) and str(values[4]) == "ERR nope"
    assert values[5] is None
    assert type(values[6]) is _Push and values[6] == [b"invalidate", None]  # a flush: everything
    assert values[7] == {b"server": b"redis", b"proto": 3, b"modules": []}


@pytest.mark.parametrize("cut", range(1, len(INVALIDATE)))
def test_a_message_cut_anywhere_waits_for_the_rest(cut: int) -> None:
    with pytest.raises(_Incomplete):
        parse(INVALIDATE[:cut])


def test_unknown_reply_types_are_a_protocol_error() -> None:
    with pytest.raises(ConnectionError):
        parse(b"!5\r\nhello\r\n")


def test_commands_are_resp_arrays_of_bulk_strings() -> None:
    assert command("PTTL", "auth:session:é") == b"*2\r\n$4\r\nPTTL\r\n$15\r\nauth:session:\xc3\xa9\r\n"


def test_integers_are_sent_as_their_decimal_text() -> None:
    assert command("SET", "k", "v", "EX", 60) == b"*5\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n$2\r\nEX\r\n$2\r\n60\r\n"


def test_raw_redis_answers_text_as_redis_py_with_decode_responses() -> None:
    value, _ = parse(b"*3\r\n$2\r\n\xc3\xa9\r\n:4\r\n*1\r\n$-1\r\n")
    assert _text(value) == ["\u00e9", 4, [None]]
    assert _text(parse(b"+OK\r\n")[0]) == "OK"
