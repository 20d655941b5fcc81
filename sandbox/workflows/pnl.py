"""The report's arithmetic: realised P&L by average cost (pure functions)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

ZERO = Decimal(0)


@dataclass
class Position:
    """A running position under average-cost accounting (long or short)."""

    qty: Decimal = ZERO
    avg_price: Decimal = ZERO

    def fill(self, side: str, qty: Decimal, price: Decimal) -> Decimal:
        """Apply a fill; the P&L it realises (closing part of the position), in the quote currency."""
        signed = qty if side == "buy" else -qty
        realised = ZERO
        if self.qty and (self.qty > 0) != (signed > 0):  # reduces (or flips) the position
            closing = min(abs(signed), abs(self.qty))
            direction = 1 if self.qty > 0 else -1
            realised = (price - self.avg_price) * closing * direction
            remaining = self.qty + signed
            if remaining == 0 or (remaining > 0) != (self.qty > 0):
                self.avg_price = price if remaining else ZERO  # flipped: the rest opens at this price
            self.qty = remaining
            return realised
        total = self.qty + signed
        self.avg_price = (self.avg_price * abs(self.qty) + price * abs(signed)) / abs(total)
        self.qty = total
        return realised


@dataclass
class Book:
    """One (account, strategy, symbol): the day's activity and the position at its end."""

    account: str
    strategy: str
    symbol: str
    orders: int = 0
    fills: int = 0
    bought: Decimal = ZERO
    sold: Decimal = ZERO
    notional: Decimal = ZERO
    fees: Decimal = ZERO
    fee_currencies: set[str] = field(default_factory=set)
    realised_pnl: Decimal = ZERO
    position: Position = field(default_factory=Position)

    @property
    def net_pnl(self) -> Decimal:
        """Realised P&L less fees (fees are charged in the quote currency on Kraken spot)."""
        return self.realised_pnl - self.fees


def pnl_books(fills: Iterable[Sequence[object]], day_start: datetime, day_end: datetime) -> dict[tuple[str, str, str], Book]:
    """Books from fills ``(ts, account, strategy, symbol, side, qty, price, cost, fee, fee_currency)`` in time order.

    Fills before ``day_start`` build the opening position only; the day's fills count as activity and realise P&L;
    later fills are ignored (the position is the one at the end of the day).
    """
    books: dict[tuple[str, str, str], Book] = {}
    for ts, account, strategy, symbol, side, qty, price, cost, fee, fee_currency in fills:  # type: ignore[misc]
        if ts >= day_end:  # type: ignore[operator]
            continue
        key = (str(account), str(strategy or "—"), str(symbol))
        book = books.setdefault(key, Book(*key))
        realised = book.position.fill(str(side), Decimal(qty), Decimal(price))  # type: ignore[arg-type]
        if ts < day_start:  # type: ignore[operator]
            continue
        book.fills += 1
        book.realised_pnl += realised
        book.notional += Decimal(cost)  # type: ignore[arg-type]
        book.fees += Decimal(fee)  # type: ignore[arg-type]
        book.fee_currencies.add(str(fee_currency))
        if side == "buy":
            book.bought += Decimal(qty)  # type: ignore[arg-type]
        else:
            book.sold += Decimal(qty)  # type: ignore[arg-type]
    return books
