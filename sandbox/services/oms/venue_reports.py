"""Reading the venue's reports: REST order and trade objects, WebSocket v2 ``executions`` items. Pure functions.

REST (``QueryOrders``, ``TradesHistory``...) writes amounts as strings, times as
epoch seconds, pairs by key (``XXBTZUSD``); the executions channel writes JSON
numbers, RFC 3339 times and v2 symbols and assets (``BTC/USD``, ``USD``).
Both become the same :class:`VenueOrder` / :class:`~.store.FillRecord` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.services.oms import states
from sandbox.services.oms.instruments import Instrument, InstrumentCatalog, asset_display, canonical_asset
from sandbox.services.oms.store import FillRecord, OrderRecord

ZERO = Decimal(0)


class ReportError(ValueError):
    """A venue report the OMS cannot read."""


def dec(value: Any, default: Decimal | None = None) -> Decimal:
    """A Decimal from a venue number (string or parsed JSON number)."""
    if value is None or value == "":
        if default is None:
            raise ReportError("missing number")
        return default
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise ReportError(f"not a number: {value!r}") from None
    if not result.is_finite():
        raise ReportError(f"not a finite number: {value!r}")
    return result


def epoch_time(value: Any) -> datetime:
    """A REST epoch-seconds time as an aware datetime."""
    return datetime.fromtimestamp(float(dec(value)), tz=timezone.utc)


def rfc3339_time(value: Any) -> datetime:
    """A WebSocket v2 RFC 3339 timestamp as an aware datetime."""
    if not isinstance(value, str):
        raise ReportError("timestamp missing")
    text = value.strip().replace("Z", "+00:00")
    main, sep, rest = text.partition(".")
    if sep:  # Python parses at most 6 fractional digits
        digits = "".join(c for c in rest if c.isdigit())
        rest = digits[:6].ljust(6, "0") + rest[len(digits):]
        text = f"{main}.{rest}"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"bad timestamp {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class VenueOrder:
    """An order as the venue's REST API reports it."""

    txid: str
    status: str
    vol: Decimal
    vol_exec: Decimal
    cost: Decimal
    fee: Decimal
    pair: str
    side: str
    ordertype: str
    price: Decimal | None
    userref: int | None
    cl_ord_id: str | None
    reason: str | None
    trades: tuple[str, ...]
    post_only: bool
    fee_in_base: bool

    @property
    def state(self) -> str | None:
        """The OMS state this report implies."""
        return states.state_from_venue(self.status, self.vol, self.vol_exec)


def venue_order(txid: str, info: dict[str, Any]) -> VenueOrder:
    """Read one ``OpenOrders`` / ``ClosedOrders`` / ``QueryOrders`` entry."""
    descr = info.get("descr") if isinstance(info.get("descr"), dict) else {}
    ordertype = str(descr.get("ordertype", "limit"))
    price = dec(descr.get("price"), ZERO) if ordertype == "limit" else None
    oflags = str(info.get("oflags") or "")
    userref = info.get("userref")
    return VenueOrder(
        txid=txid, status=str(info.get("status", "")), vol=dec(info.get("vol")), vol_exec=dec(info.get("vol_exec"), ZERO),
        cost=dec(info.get("cost"), ZERO), fee=dec(info.get("fee"), ZERO), pair=str(descr.get("pair", "")),
        side=str(descr.get("type", "")), ordertype=ordertype, price=price if price else None,
        userref=int(userref) if isinstance(userref, (int, Decimal)) or str(userref or "").lstrip("-").isdigit() else None,
        cl_ord_id=str(info["cl_ord_id"]) if info.get("cl_ord_id") else None,
        reason=str(info["reason"]) if info.get("reason") else None,
        trades=tuple(str(t) for t in info.get("trades") or ()), post_only="post" in oflags.split(","),
        fee_in_base="fcib" in oflags.split(","),
    )


def rest_fill(trade_id: str, info: dict[str, Any], order: OrderRecord, inst: Instrument, *, source: str,
              fee_in_base: bool = False) -> FillRecord:
    """A ``TradesHistory`` / ``QueryTrades`` entry of ``order`` as a fill."""
    fee_asset = inst.base if fee_in_base else inst.quote
    return FillRecord(
        fill_id=trade_id, order_id=order.id, account=order.account, strategy=order.strategy, symbol=order.symbol,
        side=str(info.get("type") or order.side), qty=dec(info.get("vol")), price=dec(info.get("price")),
        cost=dec(info.get("cost"), ZERO), fee=dec(info.get("fee"), ZERO), fee_currency=asset_display(fee_asset),
        fee_asset=fee_asset, liquidity="maker" if info.get("maker") is True else "taker",
        ts=epoch_time(info.get("time")), source=source,
    )


def ws_fill(item: dict[str, Any], order: OrderRecord, inst: Instrument) -> FillRecord:
    """An executions ``trade`` item of ``order`` as a fill."""
    fees = item.get("fees") or []
    fee, fee_asset = ZERO, inst.quote
    if fees and isinstance(fees[0], dict):
        fee = dec(fees[0].get("qty"), ZERO)
        named = canonical_asset(str(fees[0].get("asset", "")))
        fee_asset = inst.base if named == canonical_asset(inst.base) else inst.quote
    qty, price = dec(item.get("last_qty")), dec(item.get("last_price"))
    return FillRecord(
        fill_id=str(item.get("exec_id") or ""), order_id=order.id, account=order.account, strategy=order.strategy,
        symbol=order.symbol, side=str(item.get("side") or order.side), qty=qty, price=price,
        cost=dec(item.get("cost"), qty * price), fee=fee, fee_currency=asset_display(fee_asset), fee_asset=fee_asset,
        liquidity="maker" if item.get("liquidity_ind") == "m" else "taker", ts=rfc3339_time(item.get("timestamp")),
        source="ws",
    )


def adopted_order(report: VenueOrder, catalog: InstrumentCatalog, *, order_id: str, account: str) -> OrderRecord:
    """An OMS order for a venue order the OMS did not place (state before fills are applied)."""
    inst = catalog.find(report.pair)
    if inst is None:
        raise ReportError(f"unknown pair {report.pair!r}")
    if report.side not in ("buy", "sell") or report.ordertype not in ("market", "limit"):
        raise ReportError(f"unsupported order {report.side} {report.ordertype}")
    return OrderRecord(
        id=order_id, account=account, client_order_id=report.cl_ord_id or f"venue-{report.txid}",
        symbol=inst.symbol, pair=inst.key, side=report.side, type=report.ordertype, qty=report.vol,
        price=report.price if report.ordertype == "limit" else None, post_only=report.post_only,
        userref=report.userref or None, state=states.PENDING_NEW if report.status == "pending" else states.NEW,
        txid=report.txid, created_by="reconciliation", source="adopted",
    )
