"""The hot-path JSON parser gives what ``json.loads(..., parse_float=Decimal)`` gives (no servers)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sandbox.services.oms.jsondecimal import loads

DOCS = [
    b'{"error":[],"result":{"txid":["OABC-DEF"],"descr":{"order":"buy 0.001 XBTUSD @ limit 30010.0"}}}',
    b'{"allowed":false,"violations":[{"code":"max_notional","limit":1000,"actual":1500.50,"detail":null}]}',
    b'{"fee":"0.078","currency":"USD","rate":0.0026,"tiny":1e-9,"big":12345678901234567890123,"neg":-0.0}',
    '{"channel":"executions","type":"update","data":[{"exec_type":"trade","cum_qty":0.00100000,"x":"\\u00e9"}]}',
    b'[1, 2.5, "3", true, null]',
]


@pytest.mark.parametrize("raw", DOCS)
def test_same_values_and_types_as_json_with_decimal_floats(raw: bytes | str) -> None:
    ours, theirs = loads(raw), json.loads(raw, parse_float=Decimal)
    assert ours == theirs
    assert repr(ours) == repr(theirs), "Decimals keep the token's exponent and trailing zeros; integers stay int"


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"a":1,}', b"NaN"])
def test_malformed_input_raises_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)
