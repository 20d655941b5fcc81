"""The in-memory instrument snapshot: lookups, filters, pre-rendered JSON (pure logic)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.services.universe.cache import InstrumentRecord, Snapshot, name_candidates, to_public
from sandbox.services.universe.models import FeeSchedulePublic, InstrumentList, InstrumentPublic
from sandbox.services.universe.venue_pairs import parse_assetpairs

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"
NOW = datetime(2026, 7, 7, 12, 0, tzinfo=UTC)


def records(**approvals: str) -> list[InstrumentRecord]:
    pairs = parse_assetpairs(FIXTURE.read_bytes()).pairs
    return [
        InstrumentRecord(
            pair=p, listed=True, approval=approvals.get(k, "pending"), approval_reason=None, approval_by=None,
            approval_at=None, first_seen_at=NOW, synced_at=NOW, updated_at=NOW,
        )
        for k, p in pairs.items()
    ]


@pytest.fixture
def snap() -> Snapshot:
    return Snapshot(records(XXBTZUSD="approved", XXRPZUSD="approved", ADAEUR="approved", SOLUSD="excluded"), 7)


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("XBT/USD", "XXBTZUSD"),
        ("xbt/usd", "XXBTZUSD"),
        ("XBTUSD", "XXBTZUSD"),
        ("XXBTZUSD", "XXBTZUSD"),
        (" BTC/USD ", "XXBTZUSD"),
        ("BTCUSD", "XXBTZUSD"),
        ("XBT-USD", "XXBTZUSD"),
        ("eth_btc", "XETHXXBT"),
        ("ADA/EUR", "ADAEUR"),
        ("DOGE/USD", None),
        ("", None),
        ("X" * 65, None),
        ("XBT/USD/fees", None),
    ],
)
def test_resolve(snap: Snapshot, name: str, key: str | None) -> None:
    assert snap.resolve(name) == key


def test_name_candidates_are_unique_and_literal_first() -> None:
    assert name_candidates("btc-usd") == ["BTC-USD", "BTC/USD", "XBT-USD", "XBT/USD"]


def test_listed_instrument_wins_a_name_clash_with_a_delisted_one() -> None:
    recs = records()
    old = next(r for r in recs if r.pair.pair_key == "XXBTZUSD")
    gone = replace(old, pair=replace(old.pair, pair_key="XBTUSD_OLD"), listed=False)
    snap = Snapshot([*recs, gone], 1)
    assert snap.resolve("XBT/USD") == "XXBTZUSD"
    assert snap.resolve("XBTUSD_OLD") == "XBTUSD_OLD"
    only_gone = Snapshot([gone], 1)
    assert only_gone.resolve("XBT/USD") == "XBTUSD_OLD"


def test_tradable_needs_listing_approval_and_an_order_accepting_status(snap: Snapshot) -> None:
    tradable = {k for k, r in snap.records.items() if r.tradable}
    # ADA/EUR is approved but cancel_only; XRP/USD post_only still accepts orders; SOL is excluded
    assert tradable == {"XXBTZUSD", "XXRPZUSD"}


def test_select_filters_in_symbol_order(snap: Snapshot) -> None:
    assert snap.select() == ["ADAEUR", "XETHZUSD", "XETHXXBT", "SOLUSD", "XXBTZUSD", "XXRPZUSD"]
    assert snap.select(quote="usd") == ["XETHZUSD", "SOLUSD", "XXBTZUSD", "XXRPZUSD"]
    assert snap.select(quote="ZUSD") == snap.select(quote="USD")
    assert snap.select(base="XETH") == ["XETHZUSD", "XETHXXBT"]
    assert snap.select(approval="approved", status="online") == ["XXBTZUSD"]
    assert snap.select(tradable=False, quote="USD") == ["XETHZUSD", "SOLUSD"]
    assert snap.select(listed=False) == []


def test_pre_rendered_json_matches_the_public_models(snap: Snapshot) -> None:
    item = InstrumentPublic.model_validate_json(snap.json["XXBTZUSD"])
    assert item == to_public(snap.records["XXBTZUSD"])
    raw = json.loads(snap.json["XXRPZUSD"])
    assert raw["tick_size"] == "0.00001" and raw["ordermin"] == "2" and raw["approval"]["state"] == "approved"
    assert raw["fees"]["maker"][-1] == {"volume": "10000000", "percent": "0.00"}
    fees = FeeSchedulePublic.model_validate_json(snap.fees_json["XXBTZUSD"])
    assert fees.taker[0].percent == Decimal("0.26") and fees.quote == "USD" and fees.cost_decimals == 5
    assert len(fees.taker) == len(fees.maker) == 9


def test_plain_decimals_never_use_exponents() -> None:
    recs = records()
    tiny = replace(recs[0], pair=replace(recs[0].pair, tick_size=Decimal("1E-7")))
    assert json.loads(Snapshot([tiny], 0).json[tiny.pair.pair_key])["tick_size"] == "0.0000001"


def test_render_list_pages(snap: Snapshot) -> None:
    keys = snap.select()
    page = InstrumentList.model_validate_json(snap.render_list(keys, limit=2, offset=1))
    assert [i.pair_key for i in page.items] == keys[1:3]
    assert (page.total, page.limit, page.offset) == (6, 2, 1)
    empty = json.loads(snap.render_list(keys, limit=5, offset=100))
    assert empty == {"items": [], "total": 6, "limit": 5, "offset": 100}


def test_counts_listed_by_approval(snap: Snapshot) -> None:
    assert snap.counts() == {"pending": 2, "approved": 3, "excluded": 1}


def test_pages_are_memoised_per_snapshot(snap: Snapshot) -> None:
    filters = {"quote": "USD", "approval": None}
    first = snap.page(filters, limit=2, offset=0)
    assert snap.page(dict(reversed(list(filters.items()))), limit=2, offset=0) is first
    assert [i["symbol"] for i in json.loads(first)["items"]] == ["ETH/USD", "SOL/USD"]
    assert json.loads(snap.page({}, limit=1000, offset=0))["total"] == 6
