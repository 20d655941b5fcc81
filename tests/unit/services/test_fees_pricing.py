"""Fee arithmetic: Decimal only, the venue's rounding to the quote precision, minimum fee."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, localcontext

import pytest

from sandbox.services.fees.pricing import estimate_fee, fee_on_cost, order_cost, quantum, round_money
from sandbox.services.fees.tiers import FeeSchedule, FeeTier

D = Decimal


def schedule(decimals: int = 2) -> FeeSchedule:
    """Kraken's documented example tiers (XBT/USD: taker 0.26/0.22/0.16, maker 0.16/0.12/0.06)."""
    return FeeSchedule(
        symbol="XBT/USD",
        quote="USD",
        quote_decimals=decimals,
        taker=(FeeTier(D(0), D("0.26")), FeeTier(D(100000), D("0.22")), FeeTier(D(1000000), D("0.16"))),
        maker=(FeeTier(D(0), D("0.16")), FeeTier(D(100000), D("0.12")), FeeTier(D(1000000), D("0.06"))),
    )


def test_quantum() -> None:
    assert quantum(2) == D("0.01")
    assert quantum(0) == D(1)
    assert quantum(8) == D("0.00000001")


@pytest.mark.parametrize(
    ("value", "decimals", "half_up", "up"),
    [
        ("0.125", 2, "0.13", "0.13"),  # a half rounds away from zero (not to even)
        ("0.135", 2, "0.14", "0.14"),
        ("0.124", 2, "0.12", "0.13"),
        ("0.1200000001", 2, "0.12", "0.13"),
        ("0.12", 2, "0.12", "0.12"),  # exact values are never moved
        ("0.000005", 5, "0.00001", "0.00001"),
        ("0.0000049", 5, "0.00000", "0.00001"),
        ("2.5", 0, "3", "3"),
    ],
)
def test_rounding_modes(value: str, decimals: int, half_up: str, up: str) -> None:
    assert round_money(D(value), decimals, "half_up") == D(half_up)
    assert round_money(D(value), decimals, "up") == D(up)
    assert str(round_money(D(value), decimals, "half_up")) == half_up  # scale kept: "0.00000", not "0E-5"


def test_kraken_documented_examples() -> None:
    # 2 XBT at 5,000 USD, 125,000 USD of volume, taker: (10,000 / 100) * 0.22 = 22
    quote = estimate_fee(schedule(), qty=D(2), price=D(5000), liquidity="taker", volume_usd=D(125000))
    assert (quote.cost, quote.fee, quote.percent) == (D("10000.00"), D("22.00"), D("0.22"))
    # same order at 1,000,000 USD of volume as maker: 0.06 % = 6
    quote = estimate_fee(schedule(), qty=D(2), price=D(5000), liquidity="maker", volume_usd=D(1000000))
    assert quote.fee == D("6.00")
    assert quote.choice.index == 2


def test_fee_is_computed_on_the_reported_cost() -> None:
    # cost 0.333 * 3.03 = 1.00899 -> 1.01 (half-up, 2 dp); fee 1.01 * 0.26 % = 0.002626,
    # which rounds to 0.00, so Kraken's minimum fee (one cent) applies
    quote = estimate_fee(schedule(), qty=D("0.333"), price=D("3.03"), liquidity="taker", volume_usd=D(0))
    assert quote.cost == D("1.01")
    assert quote.fee == D("0.01")
    assert quote.minimum_applied


def test_half_up_and_up_differ_where_documented() -> None:
    sched = schedule(decimals=5)
    # cost 10.00001 USD at 0.4 %: exact fee 0.04000004
    sched_04 = FeeSchedule(
        symbol=sched.symbol, quote="USD", quote_decimals=5,
        taker=(FeeTier(D(0), D("0.4")),), maker=(FeeTier(D(0), D("0.25")),),
    )
    half = estimate_fee(sched_04, qty=D("1"), price=D("10.00001"), liquidity="taker", volume_usd=D(0))
    up = estimate_fee(sched_04, qty=D("1"), price=D("10.00001"), liquidity="taker", volume_usd=D(0), rounding="up")
    assert half.fee == D("0.04000")
    assert up.fee == D("0.04001")
    assert not half.minimum_applied and not up.minimum_applied


def test_zero_rate_gives_zero_fee_without_minimum() -> None:
    fee, minimum = fee_on_cost(D("1000.00"), D("0.0"), 2)
    assert fee == D("0.00") and not minimum


def test_minimum_fee_is_one_quote_unit() -> None:
    fee, minimum = fee_on_cost(D("0.50"), D("0.25"), 2)  # 0.00125 -> 0.00 -> minimum 0.01
    assert (fee, minimum) == (D("0.01"), True)
    fee, minimum = fee_on_cost(D("0.50000"), D("0.25"), 5)  # 0.00125 fits 5 dp
    assert (fee, minimum) == (D("0.00125"), False)


def test_cost_rounding_is_half_up_to_quote_precision() -> None:
    assert order_cost(D("0.00012345"), D("65432.1"), 5) == D("8.07759")  # 8.077594745
    assert order_cost(D("1"), D("0.005"), 2) == D("0.01")


def test_no_float_and_no_precision_loss_on_large_inputs() -> None:
    qty = D("999999999999.999999999999999999")
    price = D("999999999999.999999999999999999")
    cost = order_cost(qty, price, 18)
    # the exact product (computed at 100 digits), rounded only once at the end; the default
    # 28-digit context would have rounded the product to 999999999999999999999999.0000
    with localcontext() as ctx:
        ctx.prec = 100
        exact = qty * price
        expected = exact.quantize(D("1E-18"), rounding=ROUND_HALF_UP)
    assert cost == expected
    assert str(cost) == "999999999999999999999999.999998000000000000"
    fee, _ = fee_on_cost(cost, D("0.26"), 18)
    assert fee > 0 and fee.as_tuple().exponent == -18


def test_results_are_decimals_not_floats() -> None:
    quote = estimate_fee(schedule(), qty=D("0.1"), price=D("0.2"), liquidity="taker", volume_usd=D(0))
    assert isinstance(quote.cost, Decimal) and isinstance(quote.fee, Decimal)
    assert quote.cost == D("0.02")  # 0.1 * 0.2 exactly (a float product would be 0.020000000000000004)
