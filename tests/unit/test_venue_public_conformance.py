"""The venue fixture and the universe parser against Kraken's own documentation and real data.

Reads ``../shared/kraken-conformance`` (skipped with a reason where absent):
Kraken's documented AssetPairs example (krakenfx/api-specs) fixes the field
names and JSON types; the 2026 capture of five real pairs checks the parser
field by field.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from sandbox.services.universe.venue_pairs import parse_assetpairs
from sandbox.venue.public_rest import AssetPairsCatalog

pytestmark = pytest.mark.shared

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "kraken" / "assetpairs.json"


def json_type(value: Any) -> str:
    """The JSON type of a value as Kraken would send it (Decimal and float are both numbers)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


@pytest.fixture(scope="module")
def documented(shared_dir: Path) -> dict[str, Any]:
    path = shared_dir / "kraken-conformance" / "krakenfx_apispecs_rest_assetpairs_example.yaml"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def real_2026(shared_dir: Path) -> bytes:
    path = shared_dir / "kraken-conformance" / "flashbook_kraken_rest_assetpairs_5pairs.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path.read_bytes()


def test_fixture_has_every_documented_field_with_the_documented_type(documented: dict[str, Any]) -> None:
    ours = json.loads(FIXTURE.read_bytes(), parse_float=Decimal)
    assert set(ours) == set(documented) == {"error", "result"}
    doc_pairs = documented["result"]
    ref = doc_pairs["XXBTZUSD"]
    for key, entry in ours["result"].items():
        missing = set(ref) - set(entry)
        assert not missing, f"{key} lacks documented fields {missing}"
        for name, value in ref.items():
            assert json_type(entry[name]) == json_type(value), f"{key}.{name}"
        for tier in entry["fees"] + entry["fees_maker"]:
            assert len(tier) == 2 and all(json_type(x) == "number" for x in tier)
    # numbers Kraken sends as strings stay strings (ordermin, costmin, tick_size)
    for name in ("ordermin", "costmin", "tick_size"):
        assert isinstance(ref[name], str)
    # the pairs both documents know agree on their static identity
    for key in set(doc_pairs) & set(ours["result"]):
        for name in ("altname", "wsname", "base", "quote", "pair_decimals", "lot_decimals"):
            assert ours["result"][key][name] == doc_pairs[key][name], f"{key}.{name}"


def test_documented_example_parses_and_is_served(documented: dict[str, Any]) -> None:
    text = json.dumps(documented)
    parsed = parse_assetpairs(text)
    assert not parsed.skipped
    eth = parsed.pairs["XETHXXBT"]
    assert (eth.symbol, eth.altname, eth.base, eth.quote) == ("ETH/XBT", "ETHXBT", "ETH", "XBT")
    assert eth.ordermin == Decimal("0.01") and eth.costmin == Decimal("0.00002")
    assert eth.tick_size == Decimal("0.00001") and eth.pair_decimals == 5 and eth.lot_decimals == 8
    assert len(eth.fees_taker) == 9 and eth.fees_taker[0].percent == Decimal("0.26")
    assert eth.fees_maker[-1].volume == Decimal(10000000) and eth.fees_maker[-1].percent == 0
    catalog = AssetPairsCatalog.from_document(text)
    assert catalog.resolve("eth/xbt") == "XETHXXBT"


def test_real_2026_assetpairs_parse_field_by_field(real_2026: bytes) -> None:
    raw = json.loads(real_2026, parse_float=Decimal)["result"]
    parsed = parse_assetpairs(real_2026)
    assert not parsed.skipped
    assert {p.symbol for p in parsed.pairs.values()} == {"XBT/USD", "ETH/USD", "SOL/USD", "XRP/USD", "XDG/USD"}
    for key, entry in raw.items():
        pair = parsed.pairs[key]
        assert pair.altname == entry["altname"] and pair.symbol == entry["wsname"]
        assert pair.venue_base == entry["base"] and pair.venue_quote == entry["quote"]
        assert format(pair.ordermin, "f") == entry["ordermin"]
        assert format(pair.costmin, "f") == entry["costmin"]
        assert format(pair.tick_size, "f") == entry["tick_size"]
        assert pair.pair_decimals == entry["pair_decimals"] and pair.lot_decimals == entry["lot_decimals"]
        assert pair.cost_decimals == entry["cost_decimals"] and pair.status == entry["status"]
        assert len(pair.fees_taker) == len(pair.fees_maker) == 12
        assert [[t.volume, t.percent] for t in pair.fees_taker] == entry["fees"]
        assert [[t.volume, t.percent] for t in pair.fees_maker] == entry["fees_maker"]
        # the raw token is kept: 0.0 stays "0.0", not "0"
        assert str(pair.fees_maker[-1].percent) == "0.0"
