"""Strict JSON values for config-service: exact numbers, limits, storable strings."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sandbox.services.config.values import (
    MAX_DEPTH,
    ValueRejected,
    check_value,
    dumps,
    encoded_size,
    parse_json,
)


def test_fractions_are_decimals_and_serialise_exactly() -> None:
    raw = b'{"price": 0.1, "qty": 123456789012345678901234567890.000000001, "big": 1e5, "n": -0.0}'
    value = parse_json(raw)
    assert value["price"] == Decimal("0.1")
    assert isinstance(value["qty"], Decimal)
    text = dumps(value)
    assert '"price":0.1' in text
    assert "123456789012345678901234567890.000000001" in text
    assert '"big":1E+5' in text
    assert json.loads(text)["big"] == 100000.0  # still valid JSON for any parser


def test_round_trip_of_every_json_type() -> None:
    value = {"s": "é\n\"q\"", "i": -7, "b": True, "f": False, "z": None, "l": [1, [2, {"k": "v"}]], "e": {}}
    text = dumps(value)
    assert json.loads(text) == value
    assert "é" in text  # UTF-8, not \u escapes
    assert encoded_size(text) == len(text.encode())


@pytest.mark.parametrize("raw", [b"NaN", b'{"v": Infinity}', b"[-Infinity]"])
def test_non_finite_numbers_rejected(raw: bytes) -> None:
    with pytest.raises(ValueRejected, match="finite|not a JSON number"):
        parse_json(raw)


@pytest.mark.parametrize("raw", [b"{", b"{'a': 1}", b"[1,]", b"\xff\xfe", b""])
def test_malformed_json_rejected(raw: bytes) -> None:
    with pytest.raises(ValueRejected):
        parse_json(raw)


def test_huge_exponent_and_digit_count_rejected() -> None:
    with pytest.raises(ValueRejected, match="exponent"):
        parse_json(b"1e999999")
    with pytest.raises(ValueRejected, match="digits"):
        parse_json(b"0." + b"1" * 1500)
    with pytest.raises(ValueRejected):
        parse_json(b"9" * 5000)  # beyond Python's int conversion limit
    with pytest.raises(ValueRejected, match="too large"):
        check_value(int("9" * 1200))


def test_depth_limit() -> None:
    check_value(json.loads("[" * MAX_DEPTH + "]" * MAX_DEPTH))
    with pytest.raises(ValueRejected, match="nested too deeply"):
        check_value(json.loads("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)))
    with pytest.raises(ValueRejected, match="nested too deeply"):
        parse_json(b"[" * 200_000 + b"]" * 200_000)  # recursion in the parser itself


def test_unstorable_strings_rejected() -> None:
    with pytest.raises(ValueRejected, match="NUL"):
        check_value(parse_json(b'{"a": "x\\u0000y"}'))
    with pytest.raises(ValueRejected, match="NUL"):
        check_value(parse_json(b'{"a\\u0000": 1}'))
    with pytest.raises(ValueRejected, match="surrogate"):
        check_value(parse_json(b'["\\ud800"]'))
    check_value(parse_json(b'["\\ud83d\\ude00"]'))  # a proper pair is fine


def test_non_json_types_rejected() -> None:
    with pytest.raises(ValueRejected):
        check_value({"a": {1, 2}})
    with pytest.raises(ValueRejected):
        check_value({1: "x"})
    with pytest.raises(ValueRejected):
        check_value(float("nan"))
