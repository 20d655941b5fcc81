"""Orders and fills as Kraken writes them: REST objects and WebSocket v2 ``executions`` items.

REST (``OpenOrders``, ``QueryOrders``, ``TradesHistory``...) writes amounts as
strings at the pair's precision: prices with ``pair_decimals``, volumes with
``lot_decimals``, costs and fees with ``cost_decimals`` (trade prices too, as
Kraken's own examples show), times as epoch seconds with 4 decimals.  The
executions channel writes JSON numbers and RFC 3339 timestamps, symbols and
assets by their v2 names (``BTC/USD``, ``USD``).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from sandbox.replay.protocol import format_rfc3339
from sandbox.venue.trading.orders import CANCELED, CLOSED, EXPIRED, OPEN, Fill, Order
from sandbox.venue.trading.pairs import asset_name, fmt, quantize

ZERO = Decimal(0)
_TIME = Decimal("0.0001")


def epoch(t: float | None) -> Decimal | int:
    """Kraken's REST time: epoch seconds with 4 decimals (``1688666559.8974``), 0 when unset."""
    return Decimal(repr(t)).quantize(_TIME) if t else 0


def order_text(order: Order) -> str:
    """``buy 1.25000000 XBTUSD @ limit 30010.0`` / ``sell 0.25000000 XBTUSD @ market``."""
    pair = order.pair
    where = "market" if order.price is None else f"limit {fmt(order.price, pair.pair_decimals)}"
    return f"{order.side} {fmt(order.vol, pair.lot_decimals)} {pair.altname} @ {where}"


def descr(order: Order) -> dict[str, Any]:
    """The ``descr`` object of an order."""
    pair = order.pair
    return {
        "pair": pair.altname,
        "type": order.side,
        "ordertype": order.ordertype,
        "price": fmt(order.price, pair.pair_decimals) if order.price is not None else "0",
        "price2": "0",
        "leverage": "none",
        "order": order_text(order),
        "close": "",
    }


def order_info(order: Order, *, trades: bool = False) -> dict[str, Any]:
    """An order as ``OpenOrders``, ``ClosedOrders`` and ``QueryOrders`` return it."""
    pair = order.pair
    fee_decimals = pair.lot_decimals if order.fee_in_base else pair.cost_decimals
    info: dict[str, Any] = {"refid": None, "userref": order.userref if order.userref is not None else 0}
    if order.cl_ord_id is not None:
        info["cl_ord_id"] = order.cl_ord_id
    info["status"] = order.status
    if order.status != OPEN:
        info["reason"] = order.reason
    info["opentm"] = epoch(order.opentm)
    if order.closetm is not None and order.status != OPEN:
        info["closetm"] = epoch(order.closetm)
    info.update({
        "starttm": 0,
        "expiretm": epoch(order.expiretm),
        "descr": descr(order),
        "vol": fmt(order.vol, pair.lot_decimals),
        "vol_exec": fmt(order.vol_exec, pair.lot_decimals),
        "cost": fmt(order.cost, pair.cost_decimals),
        "fee": fmt(order.fee, fee_decimals),
        "price": fmt(order.avg_price, pair.pair_decimals),
        "stopprice": fmt(ZERO, pair.cost_decimals),
        "limitprice": fmt(ZERO, pair.cost_decimals),
        "misc": "",
        "oflags": order.oflags,
    })
    if trades and order.trades:
        info["trades"] = list(order.trades)
    return info


def trade_info(fill: Fill) -> dict[str, Any]:
    """A fill as ``TradesHistory`` and ``QueryTrades`` return it."""
    order = fill.order
    pair = order.pair
    return {
        "ordertxid": order.txid,
        "postxid": fill.postxid,
        "pair": pair.key,
        "time": epoch(fill.time),
        "type": order.side,
        "ordertype": order.ordertype,
        "price": fmt(fill.price, pair.cost_decimals),
        "cost": fmt(fill.cost, pair.cost_decimals),
        "fee": fmt(fill.fee, pair.lot_decimals if fill.fee_asset == pair.base else pair.cost_decimals),
        "vol": fmt(fill.vol, pair.lot_decimals),
        "margin": fmt(ZERO, pair.cost_decimals),
        "misc": "",
        "trade_id": fill.trade_id,
        "maker": fill.maker,
    }


# -- WebSocket v2 executions -----------------------------------------------------------------

UsdValue = Callable[[Order, Decimal, str], Decimal]


def _ids(order: Order, when: float) -> dict[str, Any]:
    item: dict[str, Any] = {"order_id": order.txid, "order_userref": order.userref or 0}
    if order.cl_ord_id is not None:
        item["cl_ord_id"] = order.cl_ord_id
    item["symbol"] = order.pair.symbol
    item["timestamp"] = format_rfc3339(when)
    return item


def _totals(order: Order, usd: UsdValue) -> dict[str, Any]:
    pair = order.pair
    fee_asset = pair.base if order.fee_in_base else pair.quote
    return {
        "cum_qty": quantize(order.vol_exec, pair.lot_decimals),
        "cum_cost": quantize(order.cost, pair.cost_decimals),
        "avg_price": quantize(order.avg_price, pair.pair_decimals),
        "fee_usd_equiv": quantize(usd(order, order.fee, fee_asset), 5),
    }


def order_item(order: Order, exec_type: str, when: float, usd: UsdValue) -> dict[str, Any]:
    """A full order description: the ``pending_new`` event, and open orders in the snapshot."""
    pair = order.pair
    item = _ids(order, when)
    item.update({
        "exec_type": exec_type,
        "order_status": "pending_new" if exec_type == "pending_new" else
        ("partially_filled" if order.vol_exec > ZERO else "new"),
        "side": order.side,
        "order_type": order.ordertype,
        "order_qty": quantize(order.vol, pair.lot_decimals),
        "time_in_force": order.timeinforce,
        "post_only": order.post_only,
        "fee_ccy_pref": "fcib" if order.fee_in_base else "fciq",
    })
    if order.price is not None:
        item["limit_price"] = quantize(order.price, pair.pair_decimals)
        item["limit_price_type"] = "static"
    item.update(_totals(order, usd))
    return item


def status_item(order: Order, exec_type: str, when: float, usd: UsdValue, reason: str | None = None) -> dict[str, Any]:
    """``new``, ``filled``, ``canceled`` and ``expired`` events."""
    item = _ids(order, when)
    status = {CLOSED: "filled", CANCELED: "canceled", EXPIRED: "expired"}.get(order.status, "new")
    item.update({"exec_type": exec_type, "order_status": status if exec_type != "new" else "new"})
    if exec_type != "new":
        item.update(_totals(order, usd))
    if reason and exec_type in ("canceled", "expired"):
        item["cancel_reason"] = reason
    return item


def trade_item(fill: Fill, usd: UsdValue) -> dict[str, Any]:
    """A ``trade`` event (and a trade in the snapshot)."""
    order = fill.order
    pair = order.pair
    item = _ids(order, fill.time)
    done = fill.cum_qty >= order.vol
    item.update({
        "exec_type": "trade",
        "exec_id": fill.txid,
        "trade_id": fill.trade_id,
        "side": order.side,
        "order_type": order.ordertype,
        "last_qty": quantize(fill.vol, pair.lot_decimals),
        "last_price": quantize(fill.price, pair.pair_decimals),
        "liquidity_ind": "m" if fill.maker else "t",
        "cost": quantize(fill.cost, pair.cost_decimals),
        "order_status": "filled" if done else "partially_filled",
        "cum_qty": quantize(fill.cum_qty, pair.lot_decimals),
        "cum_cost": quantize(fill.cum_cost, pair.cost_decimals),
        "avg_price": quantize(fill.cum_cost / fill.cum_qty, pair.pair_decimals) if fill.cum_qty else ZERO,
        "fees": [{"asset": asset_name(fill.fee_asset),
                  "qty": quantize(fill.fee, pair.lot_decimals if fill.fee_asset == pair.base else pair.cost_decimals)}],
        "fee_usd_equiv": quantize(usd(order, fill.fee, fill.fee_asset), 5),
    })
    return item
