"""The kit's exact-decimal JSON parser gives what ``json.loads(..., parse_float=Decimal)`` gives, values and
errors alike, also for input only ``json.loads`` accepts (no servers)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sandbox.services.kit.decimal_json import loads

DOCS = [
    b'{"error":[],"result":{"txid":["OABC-DEF"],"descr":{"order":"buy 0.001 XBTUSD @ limit 30010.0"}}}',
    b'{"allowed":false,"violations":[{"code":"max_notional","limit":1000,"actual":1500.50,"detail":null}]}',
    b'{"fee":"0.078","currency":"USD","rate":0.0026,"tiny":1e-9,"big":12345678901234567890123,"neg":-0.0}',
    '{"channel":"executions","type":"update","data":[{"exec_type":"trade","cum_qty":0.00100000,"x":"\\u00e9"}]}',
    b'[1, 2.5, "3", true, null]',
    b'{"a":1,"a":2.50}',
    # Refused by msgspec, accepted by json.loads: parsed again by json.loads.
    b'{"price":NaN,"qty":Infinity}',
    b'"\\ud800"',
    '{"qty":0.10}'.encode("utf-16"),
]


def same(ours: object, theirs: object) -> bool:
    return repr(ours) == repr(theirs)  # NaN != NaN; repr also tells Decimal('1.0') from Decimal('1') and int


@pytest.mark.parametrize("raw", DOCS)
def test_same_values_and_types_as_json_with_decimal_floats(raw: bytes | str) -> None:
    ours, theirs = loads(raw), json.loads(raw, parse_float=Decimal)
    assert same(ours, theirs), "Decimals keep the token's exponent and trailing zeros; integers stay int"


@pytest.mark.parametrize("raw", [b"", b"{", b"not json", b'{"a":1,}', b"[1] x"])
def test_malformed_input_raises_json_loads_own_error(raw: bytes) -> None:
    with pytest.raises(json.JSONDecodeError) as ours:
        loads(raw)
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(raw, parse_float=Decimal)
    assert str(ours.value) == str(theirs.value)
