"""Kraken's private REST methods, as the OMS uses them.

Each method takes the authenticated :class:`~.accounts.ApiKey` and the
request's parameters and returns Kraken's ``result`` object, or raises
:class:`~.errors.KrakenError` with Kraken's error strings.  Implemented:
``AddOrder`` (market and limit; ``post``, ``fciq``/``fcib``, ``nompp``
flags; ``GTC``/``IOC``/``GTD``; ``userref``, ``cl_ord_id``, ``validate``,
``deadline``, ``stptype``), ``CancelOrder`` (by txid, userref or cl_ord_id),
``CancelAll``, ``CancelAllOrdersAfter``, ``OpenOrders``, ``ClosedOrders``,
``QueryOrders``, ``TradesHistory``, ``QueryTrades``, ``Balance``,
``BalanceEx``, ``TradeVolume`` and ``GetWebSocketsToken``.  Anything else is
``EGeneral:Unknown method``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sandbox.replay.protocol import parse_rfc3339
from sandbox.venue.trading.accounts import Account, ApiKey
from sandbox.venue.trading.errors import (
    COST_MINIMUM,
    DEADLINE_ELAPSED,
    DUPLICATE_ORDER,
    INVALID_ORDER,
    INVALID_PRICE,
    ORDER_MINIMUM,
    ORDERS_LIMIT,
    UNKNOWN_METHOD,
    UNKNOWN_ORDER,
    KrakenError,
    invalid,
)
from sandbox.venue.trading.orders import Order
from sandbox.venue.trading.pairs import fmt, fmt_balance, places, tier_for
from sandbox.venue.trading.ratelimit import LIMITS, cancel_penalty
from sandbox.venue.trading.views import descr, order_info, order_text, trade_info

if TYPE_CHECKING:
    from sandbox.venue.trading.venue import TradingVenue

ZERO = Decimal(0)
PAGE = 50
INT32 = 2**31
OFLAGS = frozenset({"post", "fcib", "fciq", "nompp", "viqc"})
STP_TYPES = ("cancel-newest", "cancel-oldest", "cancel-both")


def rfc3339_s(epoch: float) -> str:
    """RFC 3339 to the second, as CancelAllOrdersAfter answers (``2023-03-24T17:41:56Z``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Params:
    """Typed access to a call's parameters, failing with ``EGeneral:Invalid arguments:<name>``."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw.get(name)
        if value is None or value == "":
            if required:
                raise invalid(name)
            return default
        return str(value)

    def decimal(self, name: str, *, required: bool = False) -> Decimal | None:
        text = self.text(name, required=required)
        if text is None:
            return None
        try:
            value = Decimal(text.strip())
        except (InvalidOperation, ValueError) as exc:
            raise invalid(name) from exc
        if not value.is_finite() or value <= ZERO:
            raise invalid(name)
        return value

    def integer(self, name: str) -> int | None:
        text = self.text(name)
        if text is None:
            return None
        try:
            return int(text)
        except ValueError as exc:
            raise invalid(name) from exc

    def flag(self, name: str) -> bool:
        value = self.raw.get(name)
        if isinstance(value, bool):
            return value
        return str(value).strip().lower() in ("true", "1", "yes") if value is not None else False

    def ids(self, name: str) -> list[str]:
        text = self.text(name) or ""
        return [t.strip() for t in text.split(",") if t.strip()]

    def when(self, name: str, now: float) -> float | None:
        """A Kraken time parameter: epoch seconds, ``+N`` seconds from now, or RFC 3339."""
        text = self.text(name)
        if text is None or text == "0":
            return None
        try:
            if text.startswith("+"):
                return now + float(text[1:])
            if "T" in text:
                return parse_rfc3339(text)
            return float(text)
        except ValueError as exc:
            raise invalid(name) from exc


class PrivateApi:
    """The private methods of one venue."""

    def __init__(self, venue: TradingVenue) -> None:
        self.v = venue
        self.methods: dict[str, Callable[[ApiKey, Params], Any]] = {
            "AddOrder": self.add_order,
            "CancelOrder": self.cancel_order,
            "CancelAll": self.cancel_all,
            "CancelAllOrdersAfter": self.cancel_all_orders_after,
            "OpenOrders": self.open_orders,
            "ClosedOrders": self.closed_orders,
            "QueryOrders": self.query_orders,
            "TradesHistory": self.trades_history,
            "QueryTrades": self.query_trades,
            "Balance": self.balance,
            "BalanceEx": self.balance_ex,
            "TradeVolume": self.trade_volume,
            "GetWebSocketsToken": self.websockets_token,
        }

    def call(self, method: str, key: ApiKey, params: dict[str, Any]) -> Any:
        """Run ``method``: REST rate limit first, then the method; returns Kraken's ``result``."""
        handler = self.methods.get(method)
        if handler is None:
            raise KrakenError(UNKNOWN_METHOD)
        self.v.limiter.charge_rest(key.key, key.account.tier, method, self.v.clock())
        return handler(key, Params(params))

    # -- trading ---------------------------------------------------------------------------------

    def add_order(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``AddOrder``: validate, then hand the order to the engine (or only describe it with ``validate``)."""
        v, account, now = self.v, key.account, self.v.clock()
        pair = v.pairs.get(p.text("pair", required=True) or "")
        v.limiter.charge_trading(account.id, pair.key, account.tier, 1, now)
        side = p.text("type", required=True)
        ordertype = p.text("ordertype", required=True)
        if side not in ("buy", "sell"):
            raise invalid("type")
        if ordertype not in ("market", "limit"):
            raise invalid("ordertype")
        vol = p.decimal("volume", required=True)
        assert vol is not None
        if places(vol) > pair.lot_decimals:
            raise invalid("volume")
        price = p.decimal("price", required=ordertype == "limit") if ordertype == "limit" else None
        if price is not None and (places(price) > pair.pair_decimals or price % pair.tick_size):
            raise KrakenError(f"{INVALID_PRICE}:{pair.altname} price can only be specified up to "
                              f"{pair.pair_decimals} decimals.")
        flags = set(p.ids("oflags"))
        if flags - OFLAGS or {"fcib", "fciq"} <= flags or "viqc" in flags:
            raise invalid("oflags")
        post_only = "post" in flags
        tif = (p.text("timeinforce", "GTC") or "GTC").upper()
        expiretm = p.when("expiretm", now)
        if tif not in ("GTC", "IOC", "GTD"):
            raise invalid("timeinforce")
        if post_only and (ordertype != "limit" or tif == "IOC"):
            raise invalid("oflags")
        if expiretm is not None and tif == "GTC":
            tif = "GTD"  # Kraken's older clients send expiretm alone
        if tif == "GTD" and (expiretm is None or ordertype == "market"):
            raise invalid("expiretm")
        userref = p.integer("userref")
        if userref is not None and not -INT32 <= userref < INT32:
            raise invalid("userref")
        cl_ord_id = p.text("cl_ord_id")
        if cl_ord_id is not None and len(cl_ord_id) > 36:
            raise invalid("cl_ord_id")
        stptype = p.text("stptype", "cancel-newest") or "cancel-newest"
        if stptype not in STP_TYPES:
            raise invalid("stptype")
        deadline = p.when("deadline", now)
        if deadline is not None and now > deadline:
            raise KrakenError(DEADLINE_ELAPSED)
        v.check_add(pair, ordertype, post_only)
        if vol < pair.ordermin:
            raise KrakenError(ORDER_MINIMUM)
        reference = price if price is not None else v.engine.best(pair, "ask" if side == "buy" else "bid")
        if reference is not None and reference * vol < pair.costmin:
            raise KrakenError(COST_MINIMUM)
        order = Order(
            txid="", account=account, pair=pair, side=side, ordertype=ordertype, vol=vol, price=price, opentm=now,
            seq=0, userref=userref, cl_ord_id=cl_ord_id, post_only=post_only, fee_in_base="fcib" in flags,
            timeinforce=tif, expiretm=expiretm, stptype=stptype,
        )
        description = {"order": order_text(order)}
        if p.flag("validate"):
            return {"descr": description}
        open_on_pair = sum(1 for o in account.open_orders.values() if o.pair is pair)
        if open_on_pair >= LIMITS[account.tier].max_open_orders:
            raise KrakenError(ORDERS_LIMIT)
        if cl_ord_id is not None and any(o.cl_ord_id == cl_ord_id for o in account.open_orders.values()):
            raise KrakenError(DUPLICATE_ORDER)
        order.txid, order.seq = v.ids.order_txid(), v.ids.sequence()
        v.engine.submit(order)
        return {"descr": description, "txid": [order.txid]}

    def _open_matching(self, account: Account, p: Params) -> list[Order]:
        cl_ord_id = p.text("cl_ord_id")
        if cl_ord_id is not None:
            return [o for o in account.open_orders.values() if o.cl_ord_id == cl_ord_id]
        ref = p.text("txid", required=True) or ""
        if ref.lstrip("-").isdigit():
            return [o for o in account.open_orders.values() if o.userref == int(ref)]
        order = account.orders.get(ref)
        if order is None:
            raise KrakenError(UNKNOWN_ORDER)
        return [order] if order.is_open else []

    def cancel_order(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``CancelOrder`` by ``txid``, by userref (``txid`` = an integer) or by ``cl_ord_id``."""
        self.v.check_cancel()
        orders = self._open_matching(key.account, p)
        if not orders and p.text("cl_ord_id") is not None:
            raise KrakenError(UNKNOWN_ORDER)
        now = self.v.clock()
        for order in orders:
            self.v.limiter.charge_trading(key.account.id, order.pair.key, key.account.tier,
                                          cancel_penalty(now - order.opentm), now)
            self.v.engine.cancel(order)
        return {"count": len(orders), "pending": False}

    def cancel_all(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``CancelAll``: every open order of the account."""
        self.v.check_cancel()
        orders = list(key.account.open_orders.values())
        for order in orders:
            self.v.engine.cancel(order)
        return {"count": len(orders)}

    def cancel_all_orders_after(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``CancelAllOrdersAfter``: the dead man's switch (``timeout`` seconds, 0 disables)."""
        timeout = p.integer("timeout")
        if timeout is None or not 0 <= timeout < 86_400:
            raise invalid("timeout")
        return self.v.cancel_all_after(key.account, timeout)

    # -- queries ---------------------------------------------------------------------------------

    def open_orders(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``OpenOrders`` (filters: ``userref``, ``cl_ord_id``; ``trades`` adds trade ids)."""
        orders = self._filtered(key.account.open_orders.values(), p)
        return {"open": {o.txid: order_info(o, trades=p.flag("trades")) for o in orders}}

    def closed_orders(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``ClosedOrders``: most recent first, 50 a page (``ofs``, ``start``, ``end``)."""
        orders = [o for o in key.account.orders.values() if not o.is_open]
        orders = self._filtered(orders, p)
        orders = self._window(orders, p, lambda o: o.closetm or o.opentm)
        ofs = p.integer("ofs") or 0
        page = orders[ofs: ofs + PAGE]
        return {"closed": {o.txid: order_info(o, trades=p.flag("trades")) for o in page}, "count": len(orders)}

    def query_orders(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``QueryOrders`` by ``txid`` (comma-separated, up to 50) and/or ``userref``."""
        txids, userref = p.ids("txid"), p.integer("userref")
        if not txids and userref is None:
            raise invalid("txid")
        if len(txids) > PAGE:
            raise invalid("txid")
        account = key.account
        if txids:
            found = [account.orders.get(t) for t in txids]
            if any(o is None for o in found):
                raise KrakenError(INVALID_ORDER)
            orders = [o for o in found if o is not None and (userref is None or o.userref == userref)]
        else:
            orders = [o for o in account.orders.values() if o.userref == userref]
        return {o.txid: order_info(o, trades=p.flag("trades")) for o in orders}

    def trades_history(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``TradesHistory``: most recent first, 50 a page."""
        fills = self._window(list(key.account.trades), p, lambda f: f.time)
        ofs = p.integer("ofs") or 0
        return {"trades": {f.txid: trade_info(f) for f in fills[ofs: ofs + PAGE]}, "count": len(fills)}

    def query_trades(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``QueryTrades`` by ``txid`` (comma-separated, up to 20)."""
        wanted = p.ids("txid")
        if not wanted or len(wanted) > 20:
            raise invalid("txid")
        by_id = {f.txid: f for f in key.account.trades}
        if any(t not in by_id for t in wanted):
            raise invalid("txid")
        return {t: trade_info(by_id[t]) for t in wanted}

    @staticmethod
    def _filtered(orders: Any, p: Params) -> list[Order]:
        userref, cl_ord_id = p.integer("userref"), p.text("cl_ord_id")
        return [o for o in orders if (userref is None or o.userref == userref)
                and (cl_ord_id is None or o.cl_ord_id == cl_ord_id)]

    def _window(self, items: list[Any], p: Params, when: Callable[[Any], float]) -> list[Any]:
        now = self.v.clock()
        start, end = p.when("start", now), p.when("end", now)
        chosen = [(when(i), n, i) for n, i in enumerate(items)
                  if (start is None or when(i) > start) and (end is None or when(i) <= end)]
        return [i for _, _, i in sorted(chosen, key=lambda c: (c[0], c[1]), reverse=True)]

    # -- funds -----------------------------------------------------------------------------------

    def balance(self, key: ApiKey, p: Params) -> dict[str, str]:
        """``Balance``: total balance per asset (held amounts included)."""
        account = key.account
        return {a: fmt_balance(account.balance(a), a) for a in sorted(account.balances)}

    def balance_ex(self, key: ApiKey, p: Params) -> dict[str, dict[str, str]]:
        """``BalanceEx``: ``balance`` and ``hold_trade`` per asset."""
        account = key.account
        assets = sorted(set(account.balances) | set(account.holds))
        return {a: {"balance": fmt_balance(account.balance(a), a), "hold_trade": fmt_balance(account.hold(a), a)}
                for a in assets}

    def trade_volume(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``TradeVolume``: 30-day USD volume and, for each requested pair, the taker and maker tier."""
        volume = key.account.volume_30d(self.v.clock())
        result: dict[str, Any] = {"currency": "ZUSD", "volume": fmt(volume, 4)}
        names = p.ids("pair")
        if names:
            specs = [self.v.pairs.get(n) for n in names]
            result["fees"] = {s.key: _tier_info(s.fees, volume) for s in specs}
            result["fees_maker"] = {s.key: _tier_info(s.fees_maker, volume) for s in specs}
        return result

    def websockets_token(self, key: ApiKey, p: Params) -> dict[str, Any]:
        """``GetWebSocketsToken``: a token for the executions channel."""
        return self.v.issue_token(key)


def _tier_info(tiers: tuple[tuple[Decimal, Decimal], ...], volume: Decimal) -> dict[str, Any]:
    index, threshold, percent = tier_for(tiers, volume)
    following = tiers[index + 1] if index + 1 < len(tiers) else None
    percents = [t[1] for t in tiers]
    return {
        "fee": fmt(percent, 4),
        "minfee": fmt(min(percents), 4),
        "maxfee": fmt(max(percents), 4),
        "nextfee": fmt(following[1], 4) if following else None,
        "nextvolume": fmt(following[0], 4) if following else None,
        "tiervolume": fmt(threshold, 4),
    }


__all__ = ["PrivateApi", "descr", "rfc3339_s"]
