"""A seeded single-pair market for the generator: book dynamics, trades, ticker and candles.

Prices live in integer ticks (``10**-pair_decimals``) and quantities in integer
lots (``10**-lot_decimals``), so every number the generator writes has exactly
the pair's precision.  The simulated mid follows a mean-reverting
(Ornstein-Uhlenbeck) target; orders arrive at, behind and inside the touch,
cancels hit mostly near the top, and trades sweep levels from the touch, so the
book shows inserts, deletes, partial fills and revealed levels as a real one does.
"""

from __future__ import annotations

import math
import random
from bisect import bisect_left, insort
from dataclasses import dataclass, field
from decimal import Decimal

from sandbox.replay.book import OrderBook
from sandbox.replay.pairs import PairSpec

#: levels kept per side in the "true" book, beyond the deepest subscription
RESERVE_LEVELS = 30


def fmt_fixed(units: int, decimals: int) -> str:
    """``fmt_fixed(635012, 1)`` -> ``63501.2``; ``fmt_fixed(51, 8)`` -> ``0.00000051``."""
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


@dataclass(slots=True)
class Fill:
    """One trade: the aggressor's side, a price in ticks and a quantity in lots."""

    side: str
    ticks: int
    lots: int
    market: bool


@dataclass(slots=True)
class Candle:
    """A running OHLC candle."""

    begin: float
    open: int
    high: int
    low: int
    close: int
    lots: int = 0
    notional: int = 0
    trades: int = 0


@dataclass(slots=True)
class Stats:
    """Rolling 24-hour ticker statistics (seeded, then moved by the session's trades)."""

    open: int
    low: int
    high: int
    last: int
    last_lots: int
    volume: int
    notional: int
    trades: int
    candles: dict[int, Candle] = field(default_factory=dict)


class Market:
    """One pair's order book and trading, stepped event by event."""

    def __init__(
        self, spec: PairSpec, depth: int, rng: random.Random, *, start: float = 0.0, price_decimals_out: int | None = None
    ) -> None:
        self.spec = spec
        self.rng = rng
        self.depth = depth
        self.pd = spec.price_decimals
        self.qd = spec.qty_decimals
        self.out_pd = price_decimals_out if price_decimals_out is not None else self.pd
        mid = int(spec.price.scaleb(self.pd))
        self.mu = float(mid)
        self.target = float(mid)
        #: typical distance between levels: about a tenth of a basis point, at least a tick
        self.gap = max(1.0, mid * 1e-5)
        self.sigma = mid * 8e-5
        self.theta = 1 / 120
        #: typical resting size, about 2,000 quote units
        self.size = max(1.0, 2000 / float(spec.price) * 10**self.qd)
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self._bk: list[int] = []
        self._ak: list[int] = []
        self.book = OrderBook(spec.v2, depth=10**9)
        self.last_t: float | None = None
        self.trade_id = rng.randrange(10**7, 10**8)
        self.stamp = f"{start:.6f}"
        self._seed_book(mid, start)
        self.stats = self._seed_stats(mid)

    # -- texts -------------------------------------------------------------------------

    def price_text(self, ticks: int) -> str:
        """A price in the output precision (v1 writes at least 5 decimals)."""
        return fmt_fixed(ticks * 10 ** (self.out_pd - self.pd), self.out_pd)

    def qty_text(self, lots: int) -> str:
        """A quantity with the pair's lot decimals."""
        return fmt_fixed(lots, self.qd)

    # -- book primitives -----------------------------------------------------------------

    def best_bid(self) -> int:
        return self._bk[-1]

    def best_ask(self) -> int:
        return self._ak[0]

    def _set(self, side: str, ticks: int, lots: int) -> None:
        levels, keys = (self.bids, self._bk) if side == "b" else (self.asks, self._ak)
        if lots <= 0:
            if levels.pop(ticks, None) is not None:
                del keys[bisect_left(keys, ticks)]
        else:
            if ticks not in levels:
                insort(keys, ticks)
            levels[ticks] = lots
        entry = [(self.price_text(ticks), self.qty_text(max(lots, 0)), self.stamp)]
        if side == "b":
            self.book.apply_bids(entry)
        else:
            self.book.apply_asks(entry)

    def _lots(self, scale: float = 1.0) -> int:
        return max(1, int(self.size * scale * math.exp(self.rng.gauss(-0.5, 1.1))))

    def _offset(self) -> int:
        return int(self.rng.expovariate(1 / (self.gap * 2.5)))

    def _seed_book(self, mid: int, start: float) -> None:
        """Levels around ``mid``, each last touched within the minute before ``start``."""
        bid, ask = mid - 1, mid + 1
        for _ in range(self.depth + RESERVE_LEVELS):
            self.stamp = f"{start - self.rng.uniform(0, 60):.6f}"
            self._set("b", bid, self._lots())
            self.stamp = f"{start - self.rng.uniform(0, 60):.6f}"
            self._set("a", ask, self._lots())
            bid -= 1 + self._offset()
            ask += 1 + self._offset()
        self.stamp = f"{start:.6f}"

    def _seed_stats(self, mid: int) -> Stats:
        rng = self.rng
        open_ = int(mid * (1 + rng.gauss(0, 0.02)))
        low, high = min(open_, mid) - int(mid * 0.01 * rng.random()), max(open_, mid) + int(mid * 0.01 * rng.random())
        volume = int(self.size * self.spec.activity * rng.uniform(2e3, 6e3))
        return Stats(open_, low, high, mid, self._lots(), volume, volume * mid, int(volume / self.size * 3))

    def _replenish(self) -> None:
        """Keep enough levels behind the deepest subscription; drop the far tail."""
        want = self.depth + RESERVE_LEVELS
        while len(self._bk) < want:
            self._set("b", self._bk[0] - 1 - self._offset() if self._bk else self.best_ask() - 1, self._lots())
        while len(self._ak) < want:
            self._set("a", self._ak[-1] + 1 + self._offset() if self._ak else self.best_bid() + 1, self._lots())
        while len(self._bk) > want + 10:
            self._set("b", self._bk[0], 0)
        while len(self._ak) > want + 10:
            self._set("a", self._ak[-1], 0)

    # -- the step ------------------------------------------------------------------------

    def step(self, t: float) -> list[Fill]:
        """Advance to time ``t`` and apply one market event; returns the trades it made."""
        dt = 0.0 if self.last_t is None else max(0.0, t - self.last_t)
        self.last_t = t
        self.stamp = f"{t:.6f}"
        self.target += self.theta * (self.mu - self.target) * dt + self.sigma * math.sqrt(dt) * self.rng.gauss(0, 1)
        bid, ask = self.best_bid(), self.best_ask()
        drift = self.target - (bid + ask) / 2
        rng = self.rng
        fills: list[Fill] = []
        if ask - bid > 2 * self.gap + 1 and rng.random() < 0.7:
            # liquidity providers step into a wide spread quickly
            self._add("b" if (drift > 0) == (rng.random() < 0.7) else "a", inside=True)
        elif rng.random() < min(0.6, abs(drift) / (4 * self.gap + (ask - bid))):
            up = drift > 0
            roll = rng.random()
            if roll < 0.35:
                fills = self._trade("buy" if up else "sell")
            elif roll < 0.7 and ask - bid > 1:
                self._add("b" if up else "a", inside=True)
            else:
                self._cancel("a" if up else "b", top=True)
        else:
            roll = rng.random()
            side = "b" if rng.random() < 0.5 else "a"
            if roll < 0.12:
                fills = self._trade("buy" if side == "b" else "sell")
            elif roll < 0.60:
                self._add(side, inside=ask - bid > 1 and rng.random() < 0.1)
            elif roll < 0.92:
                self._cancel(side, top=False)
            else:
                self._modify(side)
        self._replenish()
        return fills

    def _add(self, side: str, inside: bool) -> None:
        bid, ask = self.best_bid(), self.best_ask()
        if inside and ask - bid > 1:
            step = 1 + int(self.rng.expovariate(1 / self.gap))
            ticks = min(bid + step, ask - 1) if side == "b" else max(ask - step, bid + 1)
        elif side == "b":
            ticks = bid - self._offset()
        else:
            ticks = ask + self._offset()
        levels = self.bids if side == "b" else self.asks
        self._set(side, ticks, levels.get(ticks, 0) + self._lots())

    def _pick(self, side: str, top: bool) -> int:
        keys = self._bk if side == "b" else self._ak
        index = 0 if top else min(len(keys) - 1, int(self.rng.expovariate(1 / 4)))
        return keys[-1 - index] if side == "b" else keys[index]

    def _cancel(self, side: str, top: bool) -> None:
        ticks = self._pick(side, top)
        levels = self.bids if side == "b" else self.asks
        lots = levels[ticks]
        keep = 0 if self.rng.random() < 0.55 or lots < 2 else int(lots * self.rng.uniform(0.1, 0.9))
        self._set(side, ticks, keep)

    def _modify(self, side: str) -> None:
        ticks = self._pick(side, top=False)
        levels = self.bids if side == "b" else self.asks
        self._set(side, ticks, levels[ticks] + self._lots(0.5))

    def _trade(self, aggressor: str) -> list[Fill]:
        """Sweep the opposite side from the touch; at most the best 5 levels."""
        side = "a" if aggressor == "buy" else "b"
        levels = self.asks if side == "a" else self.bids
        remaining = self._lots(1.3)
        market = self.rng.random() < 0.7
        fills: list[Fill] = []
        for _ in range(5):
            ticks = self.best_ask() if side == "a" else self.best_bid()
            take = min(remaining, levels[ticks])
            fills.append(Fill(aggressor, ticks, take, market))
            self._set(side, ticks, levels[ticks] - take)
            remaining -= take
            if remaining <= 0:
                break
        for fill in fills:
            self._record_trade(fill)
        return fills

    # -- ticker and candles ----------------------------------------------------------------

    def _record_trade(self, fill: Fill) -> None:
        s = self.stats
        s.last, s.last_lots = fill.ticks, fill.lots
        s.low, s.high = min(s.low, fill.ticks), max(s.high, fill.ticks)
        s.volume += fill.lots
        s.notional += fill.lots * fill.ticks
        s.trades += 1
        for candle in s.candles.values():
            candle.high, candle.low, candle.close = max(candle.high, fill.ticks), min(candle.low, fill.ticks), fill.ticks
            candle.lots += fill.lots
            candle.notional += fill.lots * fill.ticks
            candle.trades += 1

    def candle(self, interval_min: int, t: float) -> Candle:
        """The running candle of ``interval_min`` minutes at time ``t`` (a new one each interval)."""
        begin = math.floor(t / (interval_min * 60)) * interval_min * 60
        candle = self.stats.candles.get(interval_min)
        if candle is None or candle.begin != begin:
            last = self.stats.last
            candle = self.stats.candles[interval_min] = Candle(begin, last, last, last, last)
        return candle

    def vwap_ticks(self, notional: int, lots: int) -> int:
        """Volume-weighted price in ticks (rounded half up), or the last price without volume."""
        return (2 * notional + lots) // (2 * lots) if lots else self.stats.last

    def next_trade_id(self) -> int:
        """Kraken's v2 ``trade_id``: increasing per pair."""
        self.trade_id += 1
        return self.trade_id


def as_decimal(text: str) -> Decimal:
    """A number text as a Decimal token for :func:`~sandbox.replay.protocol.dumps_exact`."""
    return Decimal(text)
