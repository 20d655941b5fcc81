"""The matching engine: the accounts' orders against the replayed (or a synthetic) market.

The market is the replayed session's L2 book of each pair.  The venue
process's replay driver calls :meth:`MatchingEngine.on_book` after every book
message it applies (with the live :class:`~sandbox.replay.book.OrderBook`) and
:meth:`MatchingEngine.on_trade` for every public trade it replays; a scenario
can instead set a synthetic book (:meth:`set_book`, :meth:`update_book`) and
print trades (:meth:`print_trade`).  The accounts' orders are not in the
replayed book; the engine keeps them beside it:

* **Taking.**  A market order, or the marketable part of a limit order, walks
  the opposite side best price first.  At each price the queue is the
  displayed anonymous quantity interleaved with resting orders of the
  accounts in time priority (each sits behind the anonymous quantity that was
  displayed when it arrived).  Fills happen at each level's price, so one
  order can fill at several prices.  Anonymous quantity taken is remembered as
  *consumed* at that level until the replayed book next changes that level,
  so two orders cannot take the same displayed liquidity.  What the visible
  book cannot fill is cancelled (``Insufficient liquidity``), as Kraken's
  market price protection would.
* **Resting.**  A resting limit order records the anonymous quantity ahead of
  it at its price (``ahead``).  A replayed trade at its price first consumes
  that quantity, then fills the order (price-time priority among the
  accounts' orders); a trade *through* its price (a sell below a resting buy)
  fills it at once.  A book update that shrinks the level caps ``ahead`` at
  what is still displayed (cancellations are assumed to leave from the back).
  When the replayed book crosses a resting order (an ask at or below a resting
  buy), the order fills against the crossing quantity at its own price.
* **Rules.**  Post-only orders that would take are cancelled (``Post only
  order``), IOC remainders are cancelled, self-trades follow ``stptype``
  (cancel-newest by default).  No trade happens while the pair or the venue is
  not trading (``cancel_only``, ``post_only``, ``maintenance``).

Everything is synchronous and must be called from the venue's event loop.
Order events (``pending_new``, ``new``, ``trade``, ``filled``, ``canceled``,
``expired``) go to the :attr:`listeners` as they happen.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sandbox.replay.book import OrderBook
from sandbox.venue.trading import settlement
from sandbox.venue.trading.errors import INSUFFICIENT_FUNDS, KrakenError
from sandbox.venue.trading.orders import CANCELED, CLOSED, EXPIRED, Fill, IdFactory, Order
from sandbox.venue.trading.pairs import PairRegistry, PairSpec

ZERO = Decimal(0)
BID, ASK = "bid", "ask"
USD_CODES = frozenset({"ZUSD", "USD"})

#: cancel reasons
USER_REQUESTED = "User requested"
POST_ONLY_REASON = "Post only order"
NO_LIQUIDITY = "Insufficient liquidity"
IOC_REASON = "Immediate or cancel"
SELF_TRADE = "Self trade prevention"


@dataclass(slots=True)
class EngineEvent:
    """Something that happened to an order.

    ``kind``: ``pending_new``, ``new``, ``trade``, ``filled``, ``canceled`` or ``expired``.
    """

    kind: str
    order: Order
    fill: Fill | None = None
    reason: str | None = None


@dataclass
class _Market:
    """One pair: the book it trades against and the accounts' resting orders."""

    pair: PairSpec
    replay_book: OrderBook | None = None
    synthetic: OrderBook | None = None
    #: (side, price) -> [anonymous quantity consumed, displayed quantity when consumption started]
    consumed: dict[tuple[str, Decimal], list[Decimal]] = field(default_factory=dict)
    #: side -> price -> resting orders in time priority
    resting: dict[str, dict[Decimal, list[Order]]] = field(default_factory=lambda: {BID: {}, ASK: {}})

    @property
    def book(self) -> OrderBook | None:
        return self.synthetic if self.synthetic is not None else self.replay_book

    def levels(self, side: str) -> dict[Decimal, Decimal]:
        book = self.book
        if book is None:
            return {}
        return {lv.price: lv.qty for lv in (book.bids() if side == BID else book.asks())}

    def anon(self, side: str, price: Decimal, levels: dict[Decimal, Decimal]) -> Decimal:
        """Anonymous quantity still available at ``price`` (displayed minus what the accounts took)."""
        displayed = levels.get(price, ZERO)
        rec = self.consumed.get((side, price))
        if rec is None:
            return displayed
        if rec[1] != displayed:
            del self.consumed[(side, price)]
            return displayed
        return max(ZERO, displayed - rec[0])

    def consume(self, side: str, price: Decimal, qty: Decimal, levels: dict[Decimal, Decimal]) -> None:
        if qty > ZERO:
            rec = self.consumed.setdefault((side, price), [ZERO, levels.get(price, ZERO)])
            rec[0] += qty

    def has_state(self) -> bool:
        return bool(self.consumed or self.resting[BID] or self.resting[ASK])


def _plain(value: Decimal) -> str:
    """``value`` without trailing zeros or exponent (``0.50`` -> ``0.5``, ``0.0`` -> ``0``)."""
    return format(value.normalize(), "f")


def _side_of(order: Order) -> str:
    return BID if order.side == "buy" else ASK


def _opposite(side: str) -> str:
    return ASK if side == BID else BID


def _better(side: str, a: Decimal, b: Decimal) -> bool:
    """True when price ``a`` is strictly better than ``b`` for a resting order on ``side``."""
    return a > b if side == BID else a < b


class MatchingEngine:
    """Matches the accounts' orders against each pair's replayed or synthetic book."""

    def __init__(
        self,
        pairs: PairRegistry,
        ids: IdFactory,
        clock: Callable[[], float],
        can_trade: Callable[[str], bool] = lambda key: True,
        usd_rates: dict[str, Decimal] | None = None,
    ) -> None:
        self.pairs = pairs
        self.ids = ids
        self.clock = clock
        self.can_trade = can_trade
        self.usd_rates = dict(usd_rates or {})
        self.listeners: list[Callable[[EngineEvent], None]] = []
        self._markets: dict[str, _Market] = {}
        self._symbols: dict[str, str | None] = {}

    # -- the market ------------------------------------------------------------------------

    def market(self, pair: PairSpec) -> _Market:
        """The engine's state for ``pair``."""
        m = self._markets.get(pair.key)
        if m is None:
            m = self._markets[pair.key] = _Market(pair)
        return m

    def _resolve(self, symbol: str) -> PairSpec | None:
        if symbol not in self._symbols:
            spec = self.pairs.find(symbol)
            self._symbols[symbol] = spec.key if spec else None
        key = self._symbols[symbol]
        return self.pairs.specs[key] if key else None

    def on_book(self, symbol: str, book: OrderBook) -> None:
        """The replayed book of ``symbol`` changed (snapshot or update applied); ``book`` is kept by reference."""
        pair = self._resolve(symbol)
        if pair is None:
            return
        m = self.market(pair)
        m.replay_book = book
        if m.synthetic is None and m.has_state():
            self._refresh(m)

    def on_trade(self, symbol: str, price: Any, qty: Any, side: str) -> None:
        """A replayed public trade: ``side`` is the taker's (``buy``/``sell``, or v1's ``b``/``s``)."""
        pair = self._resolve(symbol)
        if pair is None or self.market(pair).synthetic is not None:
            return
        self._print(self.market(pair), Decimal(str(price)), Decimal(str(qty)), side)

    def set_book(self, pair: PairSpec, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]) -> OrderBook:
        """Trade ``pair`` against a synthetic book (the replay is ignored for it until :meth:`clear_book`)."""
        book = OrderBook(pair.symbol, depth=1000)
        book.apply_snapshot([(str(p), str(q)) for p, q in bids], [(str(p), str(q)) for p, q in asks])
        m = self.market(pair)
        m.synthetic = book
        m.consumed.clear()
        self._refresh(m)
        return book

    def update_book(self, pair: PairSpec, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]) -> OrderBook:
        """Apply level changes (quantity 0 deletes) to the synthetic book of ``pair``."""
        m = self.market(pair)
        if m.synthetic is None:
            raise ValueError(f"{pair.altname} has no synthetic book: set one first")
        m.synthetic.apply_update([(str(p), str(q)) for p, q in bids], [(str(p), str(q)) for p, q in asks])
        self._refresh(m)
        return m.synthetic

    def clear_book(self, pair: PairSpec) -> None:
        """Go back to the replayed book for ``pair``."""
        m = self.market(pair)
        m.synthetic = None
        m.consumed.clear()
        if m.replay_book is not None:
            self._refresh(m)

    def step_book(self, pair: PairSpec, book: OrderBook) -> None:
        """Trade ``pair`` against ``book`` (kept by reference: a scenario's replay cursor moves it)."""
        m = self.market(pair)
        if m.synthetic is not book:
            m.synthetic = book
            m.consumed.clear()
        self._refresh(m)

    def print_trade(self, pair: PairSpec, price: Decimal, qty: Decimal, side: str) -> None:
        """A public trade in the synthetic (or replayed) market of ``pair``, as if replayed."""
        self._print(self.market(pair), price, qty, side)

    def recheck(self, pair: PairSpec) -> None:
        """Cross resting orders against the book again (after the pair starts trading again)."""
        self._refresh(self.market(pair))

    def best(self, pair: PairSpec, side: str) -> Decimal | None:
        """Best anonymous price still available on ``side`` (``bid``/``ask``), or ``None``."""
        m = self.market(pair)
        levels = m.levels(side)
        prices = sorted(levels, reverse=side == BID)
        return next((p for p in prices if m.anon(side, p, levels) > ZERO), None)

    def usd_value(self, pair: PairSpec, cost: Decimal) -> Decimal:
        """``cost`` (in the pair's quote currency) in USD, for the 30-day volume."""
        quote = pair.quote
        if quote in USD_CODES:
            return cost
        if quote in self.usd_rates:
            return cost * self.usd_rates[quote]
        for spec in self.pairs:
            if spec.base == quote and spec.quote in USD_CODES:
                bid, ask = self.best(spec, BID), self.best(spec, ASK)
                if bid is not None and ask is not None:
                    return cost * (bid + ask) / 2
        return ZERO

    # -- orders ----------------------------------------------------------------------------

    def estimate(self, order: Order) -> tuple[Decimal, Decimal]:
        """``(volume, cost)`` the order would take now from the visible book (nothing changes)."""
        m = self.market(order.pair)
        side = _opposite(_side_of(order))
        levels = m.levels(side)
        need, cost = order.vol, ZERO
        for price in self._walk_prices(m, side, order.price, levels):
            avail = m.anon(side, price, levels) + sum(
                (o.remaining for o in m.resting[side].get(price, ()) if o.account is not order.account), ZERO
            )
            take = min(need, avail)
            need -= take
            cost += take * price
            if need <= ZERO:
                break
        return order.vol - need, cost

    def submit(self, order: Order) -> None:
        """Accept a validated order: check funds, then take, rest or cancel it; raises ``EOrder:Insufficient funds``."""
        now = self.clock()
        taker_rate = settlement.fee_rate(order.pair, order.account, False, now)
        if order.ordertype == "market":
            _, cost = self.estimate(order)
        else:
            cost = order.vol * (order.price or ZERO)
        asset, needed = settlement.funds_needed(order, cost, taker_rate)
        if order.account.available(asset) < needed:
            raise KrakenError(INSUFFICIENT_FUNDS)
        order.account.orders[order.txid] = order
        order.account.open_orders[order.txid] = order
        self._emit("pending_new", order)
        if order.post_only and self._would_take(order):
            self._close(order, CANCELED, POST_ONLY_REASON)
            return
        if order.ordertype == "limit":
            order.hold_rate = taker_rate
            order.hold_asset = settlement.hold_asset(order)
            order.hold = settlement.hold_needed(order, order.vol)
            order.account.adjust_hold(order.hold_asset, order.hold)
        self._emit("new", order)
        m = self.market(order.pair)
        if self.can_trade(order.pair.key):
            self._take(m, order)
        if not order.is_open:
            return
        if order.ordertype == "market":
            self._close(order, CANCELED, NO_LIQUIDITY)
        elif order.timeinforce == "IOC":
            self._close(order, CANCELED, IOC_REASON)
        else:
            self._rest(m, order)

    def cancel(self, order: Order, reason: str = USER_REQUESTED, status: str = CANCELED) -> None:
        """Cancel (or with ``status="expired"`` expire) an open order."""
        if order.is_open:
            self._close(order, status, reason)

    def expire(self, order: Order) -> None:
        """A GTD order reached its ``expiretm``."""
        self.cancel(order, "Order expired", EXPIRED)

    def _would_take(self, order: Order) -> bool:
        m = self.market(order.pair)
        side = _opposite(_side_of(order))
        levels = m.levels(side)
        for price in self._walk_prices(m, side, order.price, levels):
            if m.anon(side, price, levels) > ZERO or any(
                o.account is not order.account for o in m.resting[side].get(price, ())
            ):
                return True
        return False

    def _walk_prices(
        self, m: _Market, side: str, limit: Decimal | None, levels: dict[Decimal, Decimal]
    ) -> list[Decimal]:
        """Prices of ``side`` (displayed or with resting orders) a taker with ``limit`` may reach, best first."""
        prices = set(levels) | set(m.resting[side])
        if limit is not None:
            prices = {p for p in prices if (p <= limit if side == ASK else p >= limit)}
        return sorted(prices, reverse=side == BID)

    def _take(self, m: _Market, taker: Order) -> None:
        side = _opposite(_side_of(taker))
        levels = m.levels(side)
        for price in self._walk_prices(m, side, taker.price, levels):
            if not taker.is_open or taker.remaining <= ZERO:
                break
            self._take_level(m, taker, side, price, levels)

    def _take_level(self, m: _Market, taker: Order, side: str, price: Decimal, levels: dict[Decimal, Decimal]) -> None:
        """Fill ``taker`` at one price: anonymous quantity and resting orders in queue order."""
        anon = m.anon(side, price, levels)
        taken = ZERO
        for maker in list(m.resting[side].get(price, ())):
            if taker.remaining <= ZERO or not taker.is_open:
                break
            before = min(maker.ahead, anon) - taken
            if before > ZERO:
                qty = min(taker.remaining, before)
                self._fill(taker, price, qty, maker=False)
                taken += qty
                if taker.remaining <= ZERO:
                    break
            if not maker.is_open:
                continue
            if maker.account is taker.account:
                if not self._self_trade(taker, maker):
                    break
                continue
            qty = min(taker.remaining, maker.remaining)
            self._cross(taker, maker, price, qty)
        if taker.is_open and taker.remaining > ZERO and anon - taken > ZERO:
            qty = min(taker.remaining, anon - taken)
            self._fill(taker, price, qty, maker=False)
            taken += qty
        m.consume(side, price, taken, levels)
        for order in m.resting[side].get(price, ()):
            order.ahead = max(ZERO, order.ahead - min(taken, order.ahead))

    def _self_trade(self, taker: Order, maker: Order) -> bool:
        """Apply self-trade prevention; True if the taker may continue."""
        stp = taker.stptype
        if stp in ("cancel-oldest", "cancel-both"):
            self._close(maker, CANCELED, SELF_TRADE)
        if stp in ("cancel-newest", "cancel-both"):
            self._close(taker, CANCELED, SELF_TRADE)
            return False
        return True

    def _rest(self, m: _Market, order: Order) -> None:
        side = _side_of(order)
        assert order.price is not None
        queue = m.resting[side].setdefault(order.price, [])
        order.ahead = m.anon(side, order.price, m.levels(side))
        if queue:
            order.ahead = max(order.ahead, queue[-1].ahead)
        queue.append(order)

    def _unrest(self, order: Order) -> None:
        m = self._markets.get(order.pair.key)
        if m is None or order.price is None:
            return
        levels = m.resting[_side_of(order)]
        queue = levels.get(order.price)
        if queue and order in queue:
            queue.remove(order)
            if not queue:
                del levels[order.price]

    # -- the replayed market moves -----------------------------------------------------------

    def _refresh(self, m: _Market) -> None:
        """After the book changed: forget consumption at changed levels, cap queues, cross."""
        levels = {BID: m.levels(BID), ASK: m.levels(ASK)}
        for (side, price), rec in list(m.consumed.items()):
            if levels[side].get(price, ZERO) != rec[1]:
                del m.consumed[(side, price)]
        for side in (BID, ASK):
            for price, queue in m.resting[side].items():
                displayed = m.anon(side, price, levels[side])
                for order in queue:
                    order.ahead = min(order.ahead, displayed)
        if self.can_trade(m.pair.key):
            for side in (BID, ASK):
                self._cross_book(m, side, levels[_opposite(side)])

    def _cross_book(self, m: _Market, side: str, opposite: dict[Decimal, Decimal]) -> None:
        """Fill resting orders on ``side`` that the opposite anonymous book now crosses, at their own price."""
        other = _opposite(side)
        prices = sorted(opposite, reverse=other == BID)
        for price in sorted(m.resting[side], reverse=side == BID):
            for order in list(m.resting[side].get(price, ())):
                for level in prices:
                    if not order.is_open or order.remaining <= ZERO:
                        break
                    if _better(side, level, price):
                        break
                    avail = m.anon(other, level, opposite)
                    if avail > ZERO:
                        qty = min(order.remaining, avail)
                        m.consume(other, level, qty, opposite)
                        self._fill(order, price, qty, maker=True)

    def _print(self, m: _Market, price: Decimal, qty: Decimal, side: str) -> None:
        """A public trade: the taker was ``side``; it may fill resting orders on the other side."""
        if qty <= ZERO or not self.can_trade(m.pair.key):
            return
        resting_side = ASK if side.lower() in ("buy", "b") else BID
        book = m.resting[resting_side]
        if not book:
            return
        volume = qty
        # orders priced better than the trade: the taker would have met them first
        for level in sorted((p for p in book if _better(resting_side, p, price)), reverse=resting_side == BID):
            for order in list(book.get(level, ())):
                if volume <= ZERO:
                    return
                fill = min(volume, order.remaining)
                order.ahead = ZERO
                self._fill(order, level, fill, maker=True)
                volume -= fill
        consumed = ZERO
        for order in list(book.get(price, ())):
            if volume <= ZERO:
                break
            before = order.ahead - consumed
            if before > ZERO:
                used = min(volume, before)
                consumed += used
                volume -= used
                if volume <= ZERO:
                    break
            fill = min(volume, order.remaining)
            self._fill(order, price, fill, maker=True)
            volume -= fill
        for order in book.get(price, ()):
            order.ahead = max(ZERO, order.ahead - min(consumed, order.ahead))

    # -- fills and closing ---------------------------------------------------------------------

    def _cross(self, taker: Order, maker: Order, price: Decimal, qty: Decimal) -> None:
        """A fill between two accounts' orders: one trade id, a maker and a taker side."""
        trade_id = self.ids.trade_id()
        self._fill(maker, price, qty, maker=True, trade_id=trade_id, contra=taker.txid)
        self._fill(taker, price, qty, maker=False, trade_id=trade_id, contra=maker.txid)

    def _fill(self, order: Order, price: Decimal, qty: Decimal, *, maker: bool, trade_id: int | None = None,
              contra: str | None = None) -> None:
        if qty <= ZERO:
            return
        now = self.clock()
        fill = settlement.settle(
            order, price, qty, maker=maker, now=now, txid=self.ids.trade_txid(),
            trade_id=trade_id if trade_id is not None else self.ids.trade_id(), contra=contra,
        )
        fill.postxid = self.ids.trade_txid()
        order.account.record_volume(now, self.usd_value(order.pair, fill.cost))
        self._emit("trade", order, fill)
        if order.remaining <= ZERO:
            self._close(order, CLOSED, None)

    def _close(self, order: Order, status: str, reason: str | None) -> None:
        order.status = status
        order.reason = reason
        order.closetm = self.clock()
        settlement.release(order)
        order.account.open_orders.pop(order.txid, None)
        self._unrest(order)
        self._emit("filled" if status == CLOSED else status, order, reason=reason)

    def _emit(self, kind: str, order: Order, fill: Fill | None = None, reason: str | None = None) -> None:
        event = EngineEvent(kind, order, fill, reason)
        for listener in list(self.listeners):
            listener(event)

    # -- reports -------------------------------------------------------------------------------

    def view(self, pair: PairSpec, depth: int = 10) -> dict[str, Any]:
        """The book the engine trades ``pair`` against, with what the accounts consumed and their resting orders."""
        m = self.market(pair)
        out: dict[str, Any] = {"pair": pair.key, "symbol": pair.symbol, "source": "synthetic" if m.synthetic else
                               ("replay" if m.replay_book is not None else "none")}
        for side, name in ((BID, "bids"), (ASK, "asks")):
            levels = m.levels(side)
            prices = sorted(levels, reverse=side == BID)[:depth]
            out[name] = [[str(p), str(levels[p]), _plain(levels[p] - m.anon(side, p, levels))] for p in prices]
            out[f"resting_{name}"] = [
                {"txid": o.txid, "price": str(p), "remaining": str(o.remaining), "ahead": str(o.ahead)}
                for p in sorted(m.resting[side], reverse=side == BID) for o in m.resting[side][p]
            ]
        return out
