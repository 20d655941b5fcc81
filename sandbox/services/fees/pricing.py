"""Fee arithmetic: cost, fee and rounding, in Decimal only.

The rule implemented (documented in docs/services/fees.md):

* ``cost = qty * price``, rounded to the pair's quote precision
  (``quote_decimals``, Kraken's ``cost_decimals``) half-up;
* ``fee = cost * percent / 100`` computed on that reported cost, then rounded
  to the same precision with the configured mode: ``ROUND_HALF_UP`` by
  default, or ``ROUND_UP`` (never under-charge) when ``FEES_FEE_ROUNDING=up``;
* Kraken's *minimum trade fee*: a positive rate never yields a zero fee; the
  fee is then one unit of the quote precision (e.g. 0.01 USD).

Computing the fee on the reported cost (not on the unrounded product) lets a
client re-check ``fee == round(cost * rate / 100)`` from the response alone.
All arithmetic runs in a local context with 80 significant digits so no
product of bounded inputs is silently rounded before the final quantize.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal, localcontext
from typing import Literal

from sandbox.services.fees.tiers import FeeSchedule, Liquidity, TierChoice

Rounding = Literal["half_up", "up"]
_MODES = {"half_up": ROUND_HALF_UP, "up": ROUND_UP}
#: Significant digits for intermediate products (inputs are bounded far below this).
PRECISION = 80


@dataclass(frozen=True, slots=True)
class FeeQuote:
    """The result of an estimate: cost and fee in the quote currency, and the tier used."""

    price: Decimal
    cost: Decimal
    fee: Decimal
    percent: Decimal
    choice: TierChoice
    minimum_applied: bool


def quantum(decimals: int) -> Decimal:
    """The smallest unit at ``decimals`` places: 2 -> ``Decimal('0.01')``, 0 -> ``Decimal('1')``."""
    return Decimal(1).scaleb(-decimals)


def round_money(value: Decimal, decimals: int, rounding: Rounding = "half_up") -> Decimal:
    """``value`` rounded to ``decimals`` places with ``rounding`` (``half_up`` or ``up``, away from zero)."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return value.quantize(quantum(decimals), rounding=_MODES[rounding])


def order_cost(qty: Decimal, price: Decimal, decimals: int) -> Decimal:
    """``qty * price`` rounded half-up to the quote precision."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return round_money(qty * price, decimals, "half_up")


def fee_on_cost(cost: Decimal, percent: Decimal, decimals: int, rounding: Rounding = "half_up") -> tuple[Decimal, bool]:
    """Fee for ``cost`` at ``percent`` %, rounded; returns (fee, minimum_applied).

    A positive fee that rounds to zero is raised to one quote unit (Kraken's
    minimum trade fee); a zero rate or a zero cost gives a zero fee.
    """
    with localcontext() as ctx:
        ctx.prec = PRECISION
        raw = cost * percent / 100
        fee = round_money(raw, decimals, rounding)
    if raw > 0 and fee == 0:
        return quantum(decimals), True
    return fee, False


def estimate_fee(
    schedule: FeeSchedule,
    *,
    qty: Decimal,
    price: Decimal,
    liquidity: Liquidity,
    volume_usd: Decimal,
    rounding: Rounding = "half_up",
) -> FeeQuote:
    """Cost, fee and tier for an order of ``qty`` at ``price`` given the account's 30-day volume."""
    choice = schedule.choose(liquidity, volume_usd)
    cost = order_cost(qty, price, schedule.quote_decimals)
    fee, minimum = fee_on_cost(cost, choice.tier.percent, schedule.quote_decimals, rounding)
    return FeeQuote(
        price=price, cost=cost, fee=fee, percent=choice.tier.percent, choice=choice, minimum_applied=minimum
    )


def notional(qty: Decimal, price: Decimal) -> Decimal:
    """Exact ``qty * price`` (no rounding) for volume accounting."""
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return qty * price

