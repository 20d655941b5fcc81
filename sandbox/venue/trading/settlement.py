"""What a fill does to an account: fees from its tier, balances debited and credited, holds released.

Fees are a percentage of the fill's cost, from the pair's maker (``fees_maker``)
or taker (``fees``) tier that the account's 30-day USD volume selects (tiers
apply from their threshold inclusive).  By default the fee is charged in the
quote currency (``fciq``); with ``fcib`` in the base currency.  Costs and
quote-currency fees are rounded to the pair's ``cost_decimals``, base-currency
fees to its ``lot_decimals``; balances move by exactly the rounded figures the
venue reports, so a client can reconcile its balances from its trades.

An open limit order holds what it may still spend: a buy holds ``remaining x
limit price x (1 + taker fee)`` of the quote currency (without the fee when the
fee is taken in base), a sell holds the remaining volume of the base currency
(plus the fee when it is taken in base).
"""

from __future__ import annotations

from decimal import Decimal

from sandbox.venue.trading.accounts import Account
from sandbox.venue.trading.orders import Fill, Order
from sandbox.venue.trading.pairs import PairSpec, quantize

ZERO = Decimal(0)
HUNDRED = Decimal(100)


def fee_rate(pair: PairSpec, account: Account, maker: bool, now: float) -> Decimal:
    """The account's fee in percent on ``pair`` for a maker or taker fill now."""
    return pair.fee_percent(account.volume_30d(now), maker)


def hold_needed(order: Order, remaining: Decimal) -> Decimal:
    """What an open limit order must hold for ``remaining`` volume (0 for market orders)."""
    if order.price is None or remaining <= ZERO:
        return ZERO
    factor = 1 + order.hold_rate / HUNDRED
    if order.side == "buy":
        notional = remaining * order.price
        return notional if order.fee_in_base else notional * factor
    return remaining * factor if order.fee_in_base else remaining


def hold_asset(order: Order) -> str:
    """The asset an order holds: the quote currency for buys, the base currency for sells."""
    return order.pair.quote if order.side == "buy" else order.pair.base


def funds_needed(order: Order, cost: Decimal, rate: Decimal) -> tuple[str, Decimal]:
    """``(asset, amount)`` an order of ``order.vol`` costing ``cost`` needs available at entry."""
    factor = 1 + rate / HUNDRED
    if order.side == "buy":
        return order.pair.quote, cost if order.fee_in_base else cost * factor
    return order.pair.base, order.vol * factor if order.fee_in_base else order.vol


def settle(order: Order, price: Decimal, qty: Decimal, *, maker: bool, now: float, txid: str,
           trade_id: int, contra: str | None = None) -> Fill:
    """Book one fill of ``qty`` at ``price`` on ``order`` and its account; returns the :class:`Fill`.

    Updates the order's executed volume, cost and fee, the account's balances
    and the order's hold; the caller closes the order when nothing remains.
    """
    pair, account = order.pair, order.account
    cost = quantize(price * qty, pair.cost_decimals)
    rate = fee_rate(pair, account, maker, now)
    if order.fee_in_base:
        fee, fee_asset = quantize(qty * rate / HUNDRED, pair.lot_decimals), pair.base
    else:
        fee, fee_asset = quantize(cost * rate / HUNDRED, pair.cost_decimals), pair.quote
    base_delta, quote_delta = (qty, -cost) if order.side == "buy" else (-qty, cost)
    if fee_asset == pair.base:
        base_delta -= fee
    else:
        quote_delta -= fee
    account.credit(pair.base, base_delta)
    account.credit(pair.quote, quote_delta)
    order.vol_exec += qty
    order.cost += cost
    order.fee += fee
    if order.hold_asset:
        new_hold = hold_needed(order, order.remaining)
        account.adjust_hold(order.hold_asset, new_hold - order.hold)
        order.hold = new_hold
    fill = Fill(txid=txid, order=order, trade_id=trade_id, time=now, price=price, vol=qty, cost=cost, fee=fee,
                fee_asset=fee_asset, maker=maker, cum_qty=order.vol_exec, cum_cost=order.cost, contra=contra)
    order.trades.append(txid)
    account.trades.append(fill)
    return fill


def release(order: Order) -> None:
    """Give back whatever the order still holds (when it closes)."""
    if order.hold_asset and order.hold:
        order.account.adjust_hold(order.hold_asset, -order.hold)
    order.hold = ZERO
