"""Positions per account and symbol (average cost), and the venue balances a fill moves. Pure functions.

A position is signed (long > 0) in base units. Adding to it moves the average
cost; reducing it realises P&L at the fill price against the average cost; a
fill through zero realises the closed part and opens the rest at the fill
price. Fees are summed separately (in the fee currency of the fills).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

ZERO = Decimal(0)


@dataclass(frozen=True)
class Position:
    """One account's position in one symbol."""

    qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    fills: int = 0


def apply_fill(pos: Position, side: str, qty: Decimal, price: Decimal, fee: Decimal = ZERO) -> Position:
    """The position after a fill of ``qty`` at ``price`` on ``side`` (``buy`` / ``sell``)."""
    if qty <= ZERO:
        raise ValueError("a fill quantity must be positive")
    signed = qty if side == "buy" else -qty
    old = pos.qty
    new_qty = old + signed
    realized = pos.realized_pnl
    if old == ZERO or (old > ZERO) == (signed > ZERO):
        total = abs(old) + qty
        avg = (abs(old) * pos.avg_price + qty * price) / total
    else:
        closed = min(qty, abs(old))
        direction = Decimal(1) if old > ZERO else Decimal(-1)
        realized += closed * (price - pos.avg_price) * direction
        if new_qty == ZERO:
            avg = ZERO
        elif (new_qty > ZERO) != (old > ZERO):
            avg = price  # flipped: the remainder opened at this fill's price
        else:
            avg = pos.avg_price
    return replace(
        pos, qty=new_qty, avg_price=avg, realized_pnl=realized, fees=pos.fees + fee,
        bought=pos.bought + (qty if side == "buy" else ZERO), sold=pos.sold + (qty if side == "sell" else ZERO),
        fills=pos.fills + 1,
    )


def balance_deltas(side: str, qty: Decimal, cost: Decimal, fee: Decimal, base: str, quote: str,
                   fee_asset: str) -> dict[str, Decimal]:
    """How a fill moves the venue account's balances: REST asset code -> change.

    A buy receives ``qty`` base and pays ``cost`` quote; a sell the reverse; the
    fee is paid in ``fee_asset`` (the quote by default, the base with ``fcib``).
    """
    deltas = {base: qty if side == "buy" else -qty, quote: -cost if side == "buy" else cost}
    deltas[fee_asset] = deltas.get(fee_asset, ZERO) - fee
    return deltas
