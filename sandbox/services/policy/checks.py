"""The policy decision: every violation of an order, each with a stable code. Pure (no I/O).

Inputs are the order, the instrument (None when unknown), the venue-wide
status, the account's key permissions (None when they could not be obtained)
and the account's rules (None when it has none). Checks never stop at the
first failure: the caller sees everything wrong with the order at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sandbox.services.policy.account_rules import AccountRules
from sandbox.services.policy.instruments import Instrument
from sandbox.services.policy.models import CheckOrderRequest
from sandbox.services.policy.numbers import is_multiple, multiply, places, plain, tidy

INSTRUMENT_UNKNOWN = "instrument_unknown"
INSTRUMENT_DELISTED = "instrument_delisted"
INSTRUMENT_NOT_APPROVED = "instrument_not_approved"
VENUE_CANCEL_ONLY = "venue_cancel_only"
VENUE_POST_ONLY = "venue_post_only"
VENUE_LIMIT_ONLY = "venue_limit_only"
VENUE_MAINTENANCE = "venue_maintenance"
QTY_BELOW_ORDERMIN = "qty_below_ordermin"
COST_BELOW_COSTMIN = "cost_below_costmin"
PRICE_OFF_TICK = "price_off_tick"
PRICE_TOO_MANY_DECIMALS = "price_too_many_decimals"
QTY_TOO_MANY_DECIMALS = "qty_too_many_decimals"
API_KEY_NO_TRADE_PERMISSION = "api_key_no_trade_permission"
PERMISSIONS_UNAVAILABLE = "permissions_unavailable"
SYMBOL_NOT_ALLOWED = "symbol_not_allowed_for_account"
NOTIONAL_ABOVE_MAX = "notional_above_max"
REFERENCE_PRICE_REQUIRED = "reference_price_required"

#: Every code this service emits, in evaluation order (stable: clients match on them).
CODES = (
    INSTRUMENT_UNKNOWN, INSTRUMENT_DELISTED, INSTRUMENT_NOT_APPROVED, VENUE_MAINTENANCE, VENUE_CANCEL_ONLY,
    VENUE_POST_ONLY, VENUE_LIMIT_ONLY, QTY_BELOW_ORDERMIN, QTY_TOO_MANY_DECIMALS, PRICE_TOO_MANY_DECIMALS,
    PRICE_OFF_TICK, COST_BELOW_COSTMIN, API_KEY_NO_TRADE_PERMISSION, PERMISSIONS_UNAVAILABLE, SYMBOL_NOT_ALLOWED,
    NOTIONAL_ABOVE_MAX, REFERENCE_PRICE_REQUIRED,
)

#: Pair statuses (Kraken AssetPairs) and what they allow; anything else is treated as maintenance.
PAIR_STATES = frozenset({"online", "cancel_only", "post_only", "limit_only", "reduce_only", "maintenance"})
#: Venue-wide states (Kraken SystemStatus).
SYSTEM_STATES = frozenset({"online", "maintenance", "cancel_only", "post_only"})

TRADE_PERMISSION = "trade"


@dataclass(frozen=True)
class Violation:
    """One reason an order is refused."""

    code: str
    message: str
    field: str | None = None
    limit: str | None = None
    actual: str | None = None

    def document(self) -> dict[str, Any]:
        """JSON-ready; absent optional members are left out."""
        doc: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            doc["field"] = self.field
        if self.limit is not None:
            doc["limit"] = self.limit
        if self.actual is not None:
            doc["actual"] = self.actual
        return doc


@dataclass(frozen=True)
class Permissions:
    """An account's Kraken key permissions (the union over its keys) from secrets-service."""

    account: str
    permissions: frozenset[str]
    keys: int


@dataclass
class Decision:
    """The outcome of one check."""

    violations: list[Violation]
    notional: Decimal | None
    price_source: str | None
    unchecked: list[str]

    @property
    def allowed(self) -> bool:
        """True when nothing is wrong."""
        return not self.violations


def _venue(order: CheckOrderRequest, inst: Instrument, system: str | None, out: list[Violation]) -> None:
    """Venue state: maintenance, cancel-only, post-only, limit-only (pair status and venue-wide status)."""
    pair = inst.status
    if system == "maintenance":
        out.append(Violation(VENUE_MAINTENANCE, "the venue is in maintenance (SystemStatus)", "symbol", actual=system))
    if pair == "maintenance" or pair not in PAIR_STATES:
        out.append(Violation(VENUE_MAINTENANCE, f"{inst.symbol} is in status {pair!r} and accepts no orders",
                             "symbol", actual=pair))
    if pair == "cancel_only" or system == "cancel_only":
        where = f"{inst.symbol} is cancel-only" if pair == "cancel_only" else "the venue is cancel-only (SystemStatus)"
        out.append(Violation(VENUE_CANCEL_ONLY, f"{where}: no new orders", "symbol",
                             actual="cancel_only"))
    if (pair == "post_only" or system == "post_only") and not order.post_only:
        where = f"{inst.symbol} is post-only" if pair == "post_only" else "the venue is post-only (SystemStatus)"
        out.append(Violation(VENUE_POST_ONLY, f"{where}: only post-only limit orders are accepted", "post_only",
                             limit="true", actual="false"))
    if pair == "limit_only" and order.type == "market":
        out.append(Violation(VENUE_LIMIT_ONLY, f"{inst.symbol} is limit-only: market orders are refused", "type",
                             limit="limit", actual="market"))


def _sizes(order: CheckOrderRequest, inst: Instrument, out: list[Violation]) -> None:
    """Order minimum, lot and price precision, tick."""
    if order.qty < inst.ordermin:
        out.append(Violation(QTY_BELOW_ORDERMIN, f"qty {tidy(order.qty)} is below the order minimum "
                             f"{plain(inst.ordermin)} {inst.base}", "qty", plain(inst.ordermin), tidy(order.qty)))
    qty_places = places(order.qty)
    if qty_places > inst.lot_decimals:
        out.append(Violation(QTY_TOO_MANY_DECIMALS, f"qty has {qty_places} decimal places; {inst.symbol} allows "
                             f"{inst.lot_decimals}", "qty", str(inst.lot_decimals), str(qty_places)))
    if order.price is None:
        return
    price_places = places(order.price)
    if price_places > inst.pair_decimals:
        out.append(Violation(PRICE_TOO_MANY_DECIMALS, f"price has {price_places} decimal places; {inst.symbol} "
                             f"allows {inst.pair_decimals}", "price", str(inst.pair_decimals), str(price_places)))
    if not is_multiple(order.price, inst.tick_size):
        out.append(Violation(PRICE_OFF_TICK, f"price {tidy(order.price)} is not a multiple of the tick size "
                             f"{plain(inst.tick_size)}", "price", plain(inst.tick_size), tidy(order.price)))


def _account(
    order: CheckOrderRequest,
    inst: Instrument | None,
    notional: Decimal | None,
    permissions: Permissions | None,
    rules: AccountRules | None,
    out: list[Violation],
    unchecked: list[str],
) -> None:
    """Key permissions and the account's policy rules."""
    if permissions is None:
        out.append(Violation(PERMISSIONS_UNAVAILABLE, f"the API key permissions of account {order.account!r} "
                             "could not be obtained from secrets-service", "account"))
    elif TRADE_PERMISSION not in permissions.permissions:
        why = "has no API key" if permissions.keys == 0 else "has no API key with the 'trade' permission"
        out.append(Violation(API_KEY_NO_TRADE_PERMISSION, f"account {order.account!r} {why}", "account",
                             TRADE_PERMISSION, ",".join(sorted(permissions.permissions)) or None))
    if rules is None:
        return
    if not rules.allows(inst, order.symbol):
        name = inst.symbol if inst is not None else order.symbol
        out.append(Violation(SYMBOL_NOT_ALLOWED, f"account {order.account!r} may not trade {name}", "symbol",
                             actual=name))
    limit = rules.notional_limit(inst) if inst is not None else None
    if limit is None:
        return
    currency, maximum = limit
    if notional is None:
        unchecked.append(NOTIONAL_ABOVE_MAX)
        out.append(Violation(REFERENCE_PRICE_REQUIRED, f"account {order.account!r} has a maximum order notional "
                             f"in {currency}: a market order needs reference_price", "reference_price",
                             plain(maximum)))
    elif notional > maximum:
        out.append(Violation(NOTIONAL_ABOVE_MAX, f"order notional {tidy(notional)} {inst.quote} exceeds the "
                             f"account maximum {plain(maximum)} {currency}", "qty", plain(maximum), tidy(notional)))


def evaluate(
    order: CheckOrderRequest,
    instrument: Instrument | None,
    *,
    venue_status: str | None,
    permissions: Permissions | None,
    rules: AccountRules | None,
) -> Decision:
    """Every violation of ``order`` (empty when it is allowed)."""
    out: list[Violation] = []
    unchecked: list[str] = []
    price, source = (order.price, "limit_price") if order.type == "limit" else (order.reference_price, "reference_price")
    notional = multiply(order.qty, price) if price is not None else None
    if instrument is None:
        out.append(Violation(INSTRUMENT_UNKNOWN, f"no instrument named {order.symbol!r} at the venue", "symbol",
                             actual=order.symbol))
    else:
        if not instrument.listed:
            out.append(Violation(INSTRUMENT_DELISTED, f"{instrument.symbol} is no longer listed by the venue",
                                 "symbol", actual=instrument.symbol))
        if instrument.approval != "approved":
            why = f" ({instrument.approval_reason})" if instrument.approval_reason else ""
            out.append(Violation(INSTRUMENT_NOT_APPROVED, f"{instrument.symbol} is {instrument.approval} for "
                                 f"trading{why}", "symbol", "approved", instrument.approval))
        _venue(order, instrument, venue_status, out)
        _sizes(order, instrument, out)
        if instrument.costmin is not None:
            if notional is None:
                unchecked.append(COST_BELOW_COSTMIN)
            elif notional < instrument.costmin:
                out.append(Violation(COST_BELOW_COSTMIN, f"order cost {tidy(notional)} {instrument.quote} is below "
                                     f"the cost minimum {plain(instrument.costmin)}", "qty",
                                     plain(instrument.costmin), tidy(notional)))
    _account(order, instrument, notional, permissions, rules, out, unchecked)
    return Decision(out, notional, source if price is not None else None, unchecked)
