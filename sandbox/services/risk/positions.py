"""Position and P&L accounting (pure): average-cost positions, marks, P&L since UTC midnight.

A position is signed (long > 0, short < 0) in base units. Realised P&L uses the
average-cost method and is net of fees charged in the quote currency. The daily
P&L is mark-to-market since UTC midnight::

    day_pnl = day_cash + qty * mark - day_open_qty * day_open_mark

where ``day_cash`` is the cash flow of the day's fills (sells +, buys -, fees -),
``day_open_qty`` the position at midnight and ``day_open_mark`` the last mark
before midnight. It splits into ``realised_today`` (average cost) and the
unrealised change since midnight (the rest). Day fields roll over lazily: a
position not touched today reads as ``day_open_qty = qty``, ``day_cash = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timezone
from decimal import Context, Decimal, localcontext

from sandbox.services.risk.assets import canonical_asset, quote_asset

ZERO = Decimal(0)
#: Wide enough for qty (1e12, 18 dp) times price (1e12, 18 dp) without rounding.
CTX = Context(prec=80)
#: Average costs are kept to 24 decimal places (a division rarely terminates).
AVG_COST_QUANTUM = Decimal(1).scaleb(-24)


def utc_day(ts: datetime) -> date:
    """The UTC calendar day of an aware timestamp."""
    return ts.astimezone(timezone.utc).date()


@dataclass(frozen=True)
class Fill:
    """The part of an OMS fill that moves a position."""

    fill_id: str
    account: str
    symbol: str
    side: str  # "buy" | "sell"
    qty: Decimal
    price: Decimal
    ts: datetime
    fee: Decimal = ZERO
    fee_currency: str | None = None
    strategy: str | None = None
    order_id: str | None = None

    @property
    def signed_qty(self) -> Decimal:
        """``+qty`` for a buy, ``-qty`` for a sell."""
        return self.qty if self.side == "buy" else -self.qty

    def fee_in_quote(self) -> Decimal:
        """The fee when it is charged in the symbol's quote currency (or the currency is unknown), else 0.

        Fees in another currency cannot be valued without FX rates; they are kept
        on the fill but left out of the P&L.
        """
        if not self.fee:
            return ZERO
        if self.fee_currency is None:
            return self.fee
        quote = quote_asset(self.symbol)
        return self.fee if quote is not None and canonical_asset(self.fee_currency) == quote else ZERO


@dataclass(frozen=True)
class Position:
    """One account's position in one symbol, with the day's P&L inputs."""

    account: str
    symbol: str
    qty: Decimal = ZERO
    avg_cost: Decimal = ZERO
    realised: Decimal = ZERO
    fees: Decimal = ZERO
    day: date = date(1970, 1, 1)
    day_open_qty: Decimal = ZERO
    day_cash: Decimal = ZERO
    day_realised: Decimal = ZERO
    version: int = 0
    updated_at: datetime | None = None

    def rolled(self, today: date) -> Position:
        """This position as seen on ``today``: day fields reset when its day is older."""
        if self.day >= today:
            return self
        return replace(self, day=today, day_open_qty=self.qty, day_cash=ZERO, day_realised=ZERO)


@dataclass(frozen=True)
class Mark:
    """The latest price of a symbol and the price it had at the start of ``day`` (UTC)."""

    symbol: str
    price: Decimal
    at: datetime
    day: date
    day_open: Decimal
    source: str = "fill"

    def open_price(self, today: date) -> Decimal:
        """The mark at the start of ``today`` (the current price when nothing moved it since)."""
        return self.day_open if self.day >= today else self.price


def next_mark(current: Mark | None, symbol: str, price: Decimal, at: datetime, source: str) -> Mark | None:
    """The mark after a new price observation, or None when the observation is older than ``current``."""
    day = utc_day(at)
    if current is None:
        return Mark(symbol, price, at, day, price, source)
    if at < current.at:
        return None
    if day > current.day:
        return Mark(symbol, price, at, day, current.price, source)
    return Mark(symbol, price, at, current.day, current.day_open, source)


def apply_fill(position: Position, fill: Fill) -> Position:
    """The position after ``fill`` (average cost; fees in quote reduce realised P&L).

    A fill from an earlier day than the position's day changes the position and
    its day-open quantity but not today's cash or realised P&L (it is yesterday's).
    """
    with localcontext(CTX):
        fill_day = utc_day(fill.ts)
        pos = position.rolled(fill_day) if fill_day > position.day else position
        late = fill_day < pos.day
        s = fill.signed_qty
        q = pos.qty
        fee = fill.fee_in_quote()
        realised = ZERO
        if q == 0 or (q > 0) == (s > 0):
            new_qty = q + s
            avg = ((abs(q) * pos.avg_cost + abs(s) * fill.price) / abs(new_qty)).quantize(AVG_COST_QUANTUM)
        else:
            closed = min(abs(s), abs(q))
            direction = 1 if q > 0 else -1
            realised = closed * (fill.price - pos.avg_cost) * direction
            new_qty = q + s
            if new_qty == 0:
                avg = ZERO
            elif (new_qty > 0) != (q > 0):
                avg = fill.price  # flipped: the remainder was opened at this price
            else:
                avg = pos.avg_cost
        realised -= fee
        updates = {
            "qty": new_qty,
            "avg_cost": avg,
            "realised": pos.realised + realised,
            "fees": pos.fees + fee,
            "version": pos.version + 1,
        }
        if late:
            updates["day_open_qty"] = pos.day_open_qty + s
        else:
            updates["day_cash"] = pos.day_cash - s * fill.price - fee
            updates["day_realised"] = pos.day_realised + realised
        return replace(pos, **updates)


@dataclass(frozen=True)
class Valuation:
    """A position valued at a mark on a given day."""

    symbol: str
    qty: Decimal
    avg_cost: Decimal
    mark: Decimal
    exposure: Decimal  # |qty * mark|
    unrealised: Decimal  # qty * (mark - avg_cost)
    realised: Decimal
    realised_today: Decimal
    day_pnl: Decimal

    @property
    def unrealised_today(self) -> Decimal:
        """The part of today's P&L that is not realised (change in unrealised P&L since midnight)."""
        with localcontext(CTX):
            return self.day_pnl - self.realised_today


def value_position(position: Position, mark: Mark | None, today: date) -> Valuation:
    """Value ``position`` at ``mark`` (its average cost when no mark is known)."""
    with localcontext(CTX):
        pos = position.rolled(today)
        price = mark.price if mark is not None else pos.avg_cost
        open_price = mark.open_price(today) if mark is not None else pos.avg_cost
        day_pnl = pos.day_cash + pos.qty * price - pos.day_open_qty * open_price
        return Valuation(
            symbol=pos.symbol,
            qty=pos.qty,
            avg_cost=pos.avg_cost,
            mark=price,
            exposure=abs(pos.qty * price),
            unrealised=pos.qty * (price - pos.avg_cost),
            realised=pos.realised,
            realised_today=pos.day_realised,
            day_pnl=day_pnl,
        )
