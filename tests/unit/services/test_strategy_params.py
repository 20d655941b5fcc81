"""Strategy parameters: bounded size, depth, keys and values."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox.services.strategy_orchestrator.params import (
    MAX_PARAMS_BYTES,
    MAX_PARAMS_DEPTH,
    check_params,
    encode_params,
)


def nested(depth: int) -> dict[str, Any]:
    """An object whose containers nest ``depth`` levels."""
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


def test_ordinary_params_pass_unchanged() -> None:
    params = {"spread_bps": 12.5, "levels": [1, 2, {"x": None}], "on": True, "name": "ünïcode ✓", "big": 2**63 - 1}
    assert check_params(params) is params
    assert encode_params(params).decode() == (
        '{"spread_bps":12.5,"levels":[1,2,{"x":null}],"on":true,"name":"ünïcode ✓","big":9223372036854775807}')
    assert check_params({}) == {}


def test_depth_limit() -> None:
    check_params(nested(MAX_PARAMS_DEPTH))
    with pytest.raises(ValueError, match="nested deeper than 8"):
        check_params(nested(MAX_PARAMS_DEPTH + 1))
    value: Any = 1
    for _ in range(MAX_PARAMS_DEPTH):
        value = [value]
    with pytest.raises(ValueError, match=r"params\.a\[0\]"):
        check_params({"a": value})


def test_a_very_deep_document_does_not_recurse() -> None:
    value: Any = 1
    for _ in range(100_000):
        value = [value]
    with pytest.raises(ValueError, match="nested deeper"):
        check_params({"a": value})


def test_size_limit_in_compact_utf8_bytes() -> None:
    fits = {"x": "a" * (MAX_PARAMS_BYTES - len('{"x":""}'))}
    assert len(encode_params(fits)) == MAX_PARAMS_BYTES
    check_params(fits)
    with pytest.raises(ValueError, match="at most 16384"):
        check_params({"x": "a" * MAX_PARAMS_BYTES})
    with pytest.raises(ValueError, match="bytes"):
        check_params({"x": "é" * (MAX_PARAMS_BYTES // 2)})  # 2 bytes each in UTF-8


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([1, 2], "must be a JSON object"),
        ("text", "must be a JSON object"),
        ({"": 1}, "keys must have 1 to 128"),
        ({"k" * 129: 1}, "keys must have 1 to 128"),
        ({"a\x00b": 1}, "NUL"),
        ({"a": "x\x00"}, "NUL"),
        ({"a": "\ud800"}, "lone surrogate"),
        ({"\udfff": 1}, "lone surrogate"),
        ({"a": float("nan")}, "finite"),
        ({"a": [float("inf")]}, "finite"),
        ({"a": 2**63}, "64 bits"),
        ({"a": -(2**63) - 1}, "64 bits"),
        ({"a": {1, 2}}, "unsupported value"),
        ({1: "x"}, "keys must be strings"),
    ],
)
def test_bad_params(params: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_params(params)


def test_the_error_names_the_path() -> None:
    with pytest.raises(ValueError, match=r"params\.risk\.limits\[1\]: numbers must be finite"):
        check_params({"risk": {"limits": [1, float("-inf")]}})
