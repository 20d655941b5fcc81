"""Parsing Kraken AssetPairs into instruments, and planning a sync (pure logic)."""

from __future__ import annotations

import copy
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sandbox.services.universe.venue_pairs import (
    StoredPair,
    VenueFormatError,
    VenueReportedError,
    diff_fields,
    parse_assetpairs,
    parse_pair,
    plan_sync,
)

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"


def fixture_doc() -> dict[str, Any]:
    return json.loads(FIXTURE.read_bytes(), parse_float=Decimal)


def body(result: dict[str, Any], errors: list[str] | None = None) -> str:
    """A response body; Decimals written as raw numbers."""
    from sandbox.venue.public_rest import dumps_exact

    return dumps_exact({"error": errors or [], "result": result}).decode()


def test_fixture_parses_into_six_instruments_with_exact_decimals() -> None:
    parsed = parse_assetpairs(FIXTURE.read_bytes())
    assert parsed.skipped == []
    assert set(parsed.pairs) == {"XXBTZUSD", "XETHZUSD", "SOLUSD", "XXRPZUSD", "XETHXXBT", "ADAEUR"}
    xbt = parsed.pairs["XXBTZUSD"]
    assert (xbt.symbol, xbt.altname, xbt.base, xbt.quote) == ("XBT/USD", "XBTUSD", "XBT", "USD")
    assert (xbt.venue_base, xbt.venue_quote) == ("XXBT", "ZUSD")
    assert xbt.ordermin == Decimal("0.0001") and xbt.costmin == Decimal("0.5") and xbt.tick_size == Decimal("0.1")
    assert (xbt.pair_decimals, xbt.lot_decimals, xbt.cost_decimals, xbt.lot_multiplier) == (1, 8, 5, 1)
    assert xbt.status == "online" and xbt.fee_volume_currency == "ZUSD"
    assert len(xbt.fees_taker) == len(xbt.fees_maker) == 9
    assert xbt.fees_taker[3].volume == 250000 and str(xbt.fees_taker[3].percent) == "0.20"
    assert str(xbt.fees_maker[-1].percent) == "0.00"
    ada = parsed.pairs["ADAEUR"]
    assert ada.status == "cancel_only" and ada.quote == "EUR" and ada.tick_size == Decimal("0.000001")


def test_numbers_never_pass_through_float() -> None:
    doc = fixture_doc()["result"]
    doc["XXBTZUSD"]["fees"][0] = [0, Decimal("0.1000000000000000055511151231257827")]
    parsed = parse_assetpairs(body(doc))
    assert parsed.pairs["XXBTZUSD"].fees_taker[0].percent == Decimal("0.1000000000000000055511151231257827")


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda e: e.pop("ordermin"), "ordermin"),
        (lambda e: e.update(ordermin="abc"), "ordermin"),
        (lambda e: e.update(ordermin="-1"), "non-negative"),
        (lambda e: e.update(ordermin="NaN"), "finite"),
        (lambda e: e.update(tick_size="0"), "tick_size must be positive"),
        (lambda e: e.update(pair_decimals=True), "pair_decimals"),
        (lambda e: e.update(lot_decimals=99), "outside"),
        (lambda e: e.update(altname=""), "altname"),
        (lambda e: e.update(altname="A\x00B"), "control"),
        (lambda e: e.update(wsname="X" * 65), "longer"),
        (lambda e: e.update(fees=[]), "fees"),
        (lambda e: e.update(fees=[[0, Decimal("0.26")], [0, Decimal("0.2")]]), "does not increase"),
        (lambda e: e.update(fees=[[0, Decimal("101")]]), "above 100"),
        (lambda e: e.update(fees=[[0]]), "pair"),
        (lambda e: e.update(fees_maker="x"), "fees_maker"),
    ],
)
def test_invalid_entries_are_skipped_with_a_reason(mutate, reason: str) -> None:
    doc = fixture_doc()["result"]
    mutate(doc["SOLUSD"])
    parsed = parse_assetpairs(body(doc))
    assert "SOLUSD" not in parsed.pairs and len(parsed.pairs) == 5
    assert [s.pair_key for s in parsed.skipped] == ["SOLUSD"]
    assert reason in parsed.skipped[0].reason


def test_optional_fields_have_kraken_defaults() -> None:
    entry = copy.deepcopy(fixture_doc()["result"]["XETHZUSD"])
    for name in ("tick_size", "costmin", "wsname", "fees_maker", "cost_decimals", "lot_multiplier", "status"):
        entry.pop(name)
    pair = parse_pair("XETHZUSD", entry)
    assert pair.tick_size == Decimal("0.01")  # 10^-pair_decimals, as before Kraken sent tick_size
    assert pair.costmin is None and pair.fees_maker == () and pair.status == "online"
    assert pair.symbol == "ETHUSD" and (pair.base, pair.quote) == ("XETH", "ZUSD")


def test_duplicate_symbols_are_skipped() -> None:
    doc = fixture_doc()["result"]
    doc["XBTUSD_DUP"] = dict(doc["XXBTZUSD"], altname="XBTUSD2")
    parsed = parse_assetpairs(body(doc))
    assert [s.pair_key for s in parsed.skipped] == ["XBTUSD_DUP"]
    assert "XBT/USD" in parsed.skipped[0].reason


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("<html>", VenueFormatError),
        ("[]", VenueFormatError),
        ('{"error": "x"}', VenueFormatError),
        ('{"error": []}', VenueFormatError),
        ('{"error": [], "result": []}', VenueFormatError),
        ('{"error": ["EService:Unavailable"]}', VenueReportedError),
    ],
)
def test_malformed_responses_raise(text: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_assetpairs(text)


def stored() -> dict[str, StoredPair]:
    """The fixture as the database would hold it after a first sync."""
    parsed = parse_assetpairs(FIXTURE.read_bytes()).pairs
    return {k: StoredPair(p, True) for k, p in parsed.items()}


def test_plan_first_sync_adds_everything_and_a_repeat_changes_nothing() -> None:
    incoming = parse_assetpairs(FIXTURE.read_bytes()).pairs
    first = plan_sync({}, incoming, set())
    assert len(first.added) == 6 and not first.updated and not first.delisted and first.changes == 6
    again = plan_sync(stored(), incoming, set())
    assert sorted(again.unchanged) == sorted(incoming) and again.changes == 0


def test_plan_updates_delists_relists_and_keeps_skipped() -> None:
    doc = fixture_doc()["result"]
    doc["XXBTZUSD"]["ordermin"] = "0.00005"
    doc["XXBTZUSD"]["fees"][0] = [0, Decimal("0.25")]
    doc["XETHZUSD"]["costmin"] = "0.50"  # same value, re-spelled: not a change
    del doc["XXRPZUSD"]  # delisted
    doc["SOLUSD"]["ordermin"] = "junk"  # skipped: neither updated nor delisted
    current = stored()
    current["ADAEUR"] = StoredPair(current["ADAEUR"].pair, listed=False)  # comes back
    parsed = parse_assetpairs(body(doc))
    plan = plan_sync(current, parsed.pairs, {s.pair_key for s in parsed.skipped})
    updated = {p.pair_key: changes for p, changes in plan.updated}
    assert set(updated) == {"XXBTZUSD", "ADAEUR"}
    assert updated["XXBTZUSD"]["ordermin"] == {"from": "0.0001", "to": "0.00005"}
    assert updated["XXBTZUSD"]["fees_taker"]["to"][0] == ["0", "0.25"]
    assert updated["ADAEUR"] == {"listed": {"from": False, "to": True}}
    assert plan.relisted == {"ADAEUR"}
    assert [p.pair_key for p in plan.delisted] == ["XXRPZUSD"]
    assert sorted(plan.unchanged) == ["XETHXXBT", "XETHZUSD"]


def test_delisted_pairs_are_not_delisted_twice() -> None:
    current = stored()
    current["XXRPZUSD"] = StoredPair(current["XXRPZUSD"].pair, listed=False)
    incoming = {k: s.pair for k, s in current.items() if k != "XXRPZUSD"}
    assert plan_sync(current, incoming, set()).delisted == []


def test_diff_fields_reports_plain_decimals() -> None:
    pairs = parse_assetpairs(FIXTURE.read_bytes()).pairs
    old = pairs["XXRPZUSD"]
    doc = fixture_doc()["result"]["XXRPZUSD"]
    doc["tick_size"] = "0.0000001"
    doc["status"] = "online"
    new = parse_pair("XXRPZUSD", doc)
    assert diff_fields(old, new) == {
        "tick_size": {"from": "0.00001", "to": "0.0000001"},
        "status": {"from": "post_only", "to": "online"},
    }
