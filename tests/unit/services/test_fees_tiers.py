"""Fee tiers: parsing Kraken/universe shapes and tier selection at the boundaries."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sandbox.services.fees.tiers import (
    FeeSchedule,
    FeeTier,
    ScheduleError,
    check_tiers,
    normalise_currency,
    parse_tiers,
    schedule_from_kraken,
    select_tier,
)
from sandbox.services.fees.universe import needs_instrument, schedule_from_universe

# An excerpt of a real Kraken public/AssetPairs entry (XXBTZUSD, 2026), numbers as JSON tokens.
XBTUSD = """{"altname":"XBTUSD","wsname":"XBT/USD","base":"XXBT","quote":"ZUSD","cost_decimals":5,
"pair_decimals":1,"lot_decimals":8,
"fees":[[0,0.4],[10000,0.35],[50000,0.24],[100000,0.22],[250000,0.2],[500000,0.18],[1000000,0.16],
[2500000,0.14],[5000000,0.12],[10000000,0.1],[100000000,0.08],[500000000,0.05]],
"fees_maker":[[0,0.25],[10000,0.2],[50000,0.14],[100000,0.12],[250000,0.1],[500000,0.08],[1000000,0.06],
[2500000,0.04],[5000000,0.02],[10000000,0.0],[100000000,0.0],[500000000,0.0]],
"fee_volume_currency":"ZUSD"}"""


@pytest.fixture
def xbtusd() -> FeeSchedule:
    """The real XBT/USD schedule, parsed from raw JSON tokens as Decimal."""
    return schedule_from_kraken("XBT/USD", json.loads(XBTUSD, parse_float=Decimal))


def test_kraken_entry_parses_exactly(xbtusd: FeeSchedule) -> None:
    assert xbtusd.quote == "USD"
    assert xbtusd.fee_volume_currency == "USD"
    assert xbtusd.quote_decimals == 5  # cost_decimals, not pair_decimals
    assert len(xbtusd.taker) == len(xbtusd.maker) == 12
    assert xbtusd.taker[0] == FeeTier(Decimal(0), Decimal("0.4"))
    assert xbtusd.maker[9] == FeeTier(Decimal(10000000), Decimal("0.0"))
    # exact decimals: no binary float crept in
    assert str(xbtusd.taker[3].percent) == "0.22"


@pytest.mark.parametrize(
    ("volume", "taker", "maker", "index"),
    [
        ("0", "0.4", "0.25", 0),
        ("9999.99999999", "0.4", "0.25", 0),
        ("10000", "0.35", "0.2", 1),  # a threshold is inclusive
        ("10000.00000001", "0.35", "0.2", 1),
        ("49999.99", "0.35", "0.2", 1),
        ("50000", "0.24", "0.14", 2),
        ("99999.999", "0.24", "0.14", 2),
        ("100000", "0.22", "0.12", 3),
        ("9999999.99", "0.12", "0.02", 8),
        ("10000000", "0.1", "0.0", 9),
        ("499999999.99", "0.08", "0.0", 10),
        ("500000000", "0.05", "0.0", 11),
        ("1E+15", "0.05", "0.0", 11),  # beyond the top tier: stays there
    ],
)
def test_tier_selection_at_boundaries(xbtusd: FeeSchedule, volume: str, taker: str, maker: str, index: int) -> None:
    taker_choice = xbtusd.choose("taker", Decimal(volume))
    maker_choice = xbtusd.choose("maker", Decimal(volume))
    assert taker_choice.tier.percent == Decimal(taker)
    assert maker_choice.tier.percent == Decimal(maker)
    assert taker_choice.index == maker_choice.index == index


def test_next_tier_and_top(xbtusd: FeeSchedule) -> None:
    first = xbtusd.choose("taker", Decimal(0))
    assert first.next_tier == FeeTier(Decimal(10000), Decimal("0.35"))
    assert xbtusd.choose("taker", Decimal(500000000)).next_tier is None


def test_negative_volume_selects_first_tier(xbtusd: FeeSchedule) -> None:
    assert xbtusd.choose("taker", Decimal(-1)).index == 0


def test_select_tier_helper() -> None:
    tiers = parse_tiers([[0, "0.26"], [50000, "0.24"]])
    assert select_tier(tiers, Decimal("49999.99")).percent == Decimal("0.26")
    assert select_tier(tiers, Decimal("50000")).percent == Decimal("0.24")


def test_pair_without_maker_split_uses_taker_for_maker() -> None:
    schedule = schedule_from_kraken("ABC/EUR", {"fees": [[0, "0.26"]], "quote": "ZEUR", "cost_decimals": 4})
    assert schedule.maker == schedule.taker
    assert schedule.quote == "EUR"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "at least one tier"),
        ([[10, "0.2"]], "must start at volume 0"),
        ([[0, "0.2"], [0, "0.1"]], "strictly increase"),
        ([[0, "0.2"], [100, "0.1"], [50, "0.05"]], "strictly increase"),
        ([[0, "101"]], "between 0 and 100"),
        ([[0, "-0.1"]], "between 0 and 100"),
        ([[0, "0.1"], ["1E+16", "0.1"]], "between 0 and 1e15"),
        ([[0, "NaN"]], "finite"),
        ([[0, "Infinity"]], "finite"),
        ([[0, "abc"]], "not a number"),
        ([[0, True]], "not a number"),
        ([[0]], "pair"),
        ("0.2", "array"),
        ([[i, "0.1"] for i in range(33)], "at most 32"),
    ],
)
def test_unusable_tiers_are_refused(raw: object, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_tiers(raw)


def test_check_tiers_accepts_zero_percent() -> None:
    check_tiers((FeeTier(Decimal(0), Decimal(0)),))


def test_quote_decimals_bounds() -> None:
    tiers = (FeeTier(Decimal(0), Decimal("0.1")),)
    with pytest.raises(ScheduleError, match="quote_decimals"):
        FeeSchedule(symbol="X/Y", quote="Y", quote_decimals=19, taker=tiers, maker=tiers)


def test_missing_quote_precision_is_an_error() -> None:
    with pytest.raises(ScheduleError, match="precision"):
        schedule_from_kraken("A/B", {"fees": [[0, 1]], "quote": "B"})


@pytest.mark.parametrize(
    ("code", "plain"),
    [
        ("ZUSD", "USD"), ("zeur", "EUR"), ("XXBT", "XBT"), ("XETH", "ETH"),
        ("USD", "USD"), ("XTZ", "XTZ"), ("ZETA", "ZETA"),
    ],
)
def test_currency_normalisation(code: str, plain: str) -> None:
    assert normalise_currency(code) == plain


def test_universe_fee_document_with_instrument_fallback() -> None:
    # the shape universe-service serves: tiers as {"volume", "percent"} objects, decimals as strings
    fees = {
        "symbol": "XBT/USD", "pair_key": "XXBTZUSD", "fee_volume_currency": "ZUSD",
        "taker": [{"volume": "0", "percent": "0.40"}, {"volume": "10000", "percent": "0.35"}],
        "maker": [{"volume": "0", "percent": "0.25"}, {"volume": "10000", "percent": "0.20"}],
    }
    assert needs_instrument(fees)
    instrument = {"symbol": "XBT/USD", "quote": "USD", "cost_decimals": 5, "pair_decimals": 1}
    schedule = schedule_from_universe("XBT/USD", fees, instrument)
    assert schedule.source == "universe"
    assert (schedule.quote, schedule.quote_decimals) == ("USD", 5)
    assert schedule.choose("maker", Decimal(10000)).tier.percent == Decimal("0.20")


def test_universe_document_in_kraken_shape_needs_no_instrument() -> None:
    doc = json.loads(XBTUSD, parse_float=Decimal)
    assert not needs_instrument(doc)
    schedule = schedule_from_universe("XBT/USD", doc)
    assert schedule.choose("taker", Decimal(50000)).tier.percent == Decimal("0.24")


def test_universe_instrument_with_nested_fees() -> None:
    instrument = {
        "quote": "USD", "cost_decimals": 5,
        "fees": {"fee_volume_currency": "ZUSD", "taker": [{"volume": "0", "percent": "0.4"}], "maker": []},
    }
    schedule = schedule_from_universe("XBT/USD", instrument)
    assert schedule.maker == schedule.taker


def test_universe_document_without_tiers_is_refused() -> None:
    with pytest.raises(ScheduleError):
        schedule_from_universe("XBT/USD", {"quote": "USD", "cost_decimals": 5})
