"""The pre-trade rules (pure): one order against the in-memory datasets, every violation listed.

Rules and their stable codes:

* ``kill_switch``     - ``kill_switch_active``: the account's kill switch is on.
* ``compliance``      - ``restricted_symbol`` / ``restricted_asset``: the symbol or its base asset is on
  the restricted list (globally or for the account).
* ``esg``             - ``esg_excluded``: the base asset is excluded on ESG grounds.
* ``position_limit``  - ``position_limit_exceeded``: ``|position + order|`` above the account's limit in the symbol,
  scaled down by the symbol's 1-minute realised volatility when volatility scaling is on
  (:func:`scale_limit`; without the feature the limit applies unscaled and the answer says why).
* ``gross_exposure``  - ``gross_exposure_limit_exceeded``: ``sum |position * mark| + notional`` above the limit.
* ``concentration``   - ``concentration_limit_exceeded``: the symbol's exposure above X % of the gross
  exposure (only once the gross exposure reaches the floor).
* ``daily_loss``      - ``daily_loss_limit_breached``: P&L since UTC midnight below ``-limit``.
* ``capital``         - ``insufficient_capital`` (notional above the strategy's available capital),
  ``capital_unavailable`` (the allocator cannot be asked), ``capital_not_allocated`` (it does not know
  the strategy).
* ``pricing``         - ``price_unavailable``: a notional is needed but the order has no price or
  reference price and the symbol has no mark.

An order that only reduces the account's position in the symbol (opposite side,
no flip) is exempt from the exposure rules (position, gross, concentration,
capital): a risk check must never stop risk being taken off. The kill switch,
the restricted list, ESG and the daily loss limit apply to every order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext
from typing import Any, Protocol

from sandbox.services.risk.assets import base_asset, canonical_symbol
from sandbox.services.risk.domain import EsgExclusion, KillSwitch, LimitSet, RestrictedIndex
from sandbox.services.risk.numbers import plain_or_none as _s
from sandbox.services.risk.positions import CTX, ZERO, Mark, Position, Valuation, value_position

HUNDRED = Decimal(100)


class RiskView(Protocol):
    """What the rules read: the current version of every dataset."""

    restricted: RestrictedIndex
    esg: Mapping[str, EsgExclusion]
    limits: LimitSet
    kill_switches: Mapping[str, KillSwitch]
    positions: Mapping[str, Mapping[str, Position]]
    marks: Mapping[str, Mark]


@dataclass(frozen=True)
class Order:
    """An order to check."""

    account: str
    symbol: str
    side: str  # "buy" | "sell"
    qty: Decimal
    price: Decimal | None = None
    reference_price: Decimal | None = None
    strategy: str | None = None

    @property
    def signed_qty(self) -> Decimal:
        """``+qty`` for a buy, ``-qty`` for a sell."""
        return self.qty if self.side == "buy" else -self.qty


@dataclass(frozen=True)
class Capital:
    """The strategy's available capital as the allocator reported it, or why it is not known."""

    available: Decimal | None = None
    problem: str | None = None  # "capital_unavailable" | "capital_not_allocated"
    message: str = ""
    currency: str | None = None


@dataclass(frozen=True)
class Volatility:
    """A symbol's 1-minute realised volatility from the feature store, or why it is not known."""

    value: Decimal | None = None
    problem: str | None = None  # "feature_missing" | "feature_server_unavailable"
    message: str = ""
    as_of: str | None = None


@dataclass(frozen=True)
class VolatilityScaling:
    """Volatility scaling of position limits: ``factor = clamp(reference / volatility, floor, 1)``."""

    reference: Decimal
    """The volatility at or below which a limit applies in full."""
    floor: Decimal
    """The smallest factor: a limit never shrinks below ``floor * limit``."""
    volatility: Volatility


@dataclass(frozen=True)
class ScaledLimit:
    """The position limit a check applied and how it got there."""

    limit: Decimal
    base_limit: Decimal
    factor: Decimal
    scaled: bool
    reason: str
    volatility: Decimal | None = None
    reference: Decimal | None = None
    volatility_as_of: str | None = None

    def detail(self) -> dict[str, Any]:
        """JSON-ready figures for violations and answers."""
        return {
            "limit": _s(self.limit), "base_limit": _s(self.base_limit), "factor": _s(self.factor),
            "scaled": self.scaled, "reason": self.reason, "volatility_1m": _s(self.volatility),
            "reference_volatility": _s(self.reference), "volatility_as_of": self.volatility_as_of,
        }


def scale_limit(base: Decimal, scaling: VolatilityScaling | None) -> ScaledLimit:
    """The position limit after volatility scaling (never above ``base``; unscaled without a volatility)."""
    if scaling is None:
        return ScaledLimit(base, base, Decimal(1), False, "volatility scaling is off")
    vol = scaling.volatility
    if vol.value is None:
        return ScaledLimit(
            base, base, Decimal(1), False,
            f"unscaled: {vol.problem or 'feature_missing'} ({vol.message or 'no volatility'})",
            reference=scaling.reference,
        )
    if vol.value <= scaling.reference:
        factor = Decimal(1)
    else:
        factor = max(scaling.floor, scaling.reference / vol.value)
    limit = base * factor
    reason = (
        f"scaled by {_s(factor.quantize(Decimal('0.0001')))}: 1-minute volatility {_s(vol.value)} "
        f"against the reference {_s(scaling.reference)}"
        if factor < 1 else f"unscaled: 1-minute volatility {_s(vol.value)} within the reference {_s(scaling.reference)}"
    )
    return ScaledLimit(limit, base, factor, factor < 1, reason, vol.value, scaling.reference, vol.as_of)


@dataclass(frozen=True)
class Violation:
    """One failed rule."""

    code: str
    rule: str
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class Assessment:
    """The outcome of a check: violations plus the figures they were computed from."""

    violations: list[Violation]
    reduces: bool
    price: Decimal | None
    price_source: str | None
    notional: Decimal | None
    position: Decimal
    projected_position: Decimal
    gross_exposure: Decimal
    projected_gross_exposure: Decimal | None
    projected_symbol_exposure: Decimal | None
    day_pnl: Decimal
    capital_available: Decimal | None = None
    position_limit: ScaledLimit | None = None

    @property
    def allowed(self) -> bool:
        """True when no rule failed."""
        return not self.violations


def reduces_position(current: Decimal, signed_qty: Decimal) -> bool:
    """Whether an order only takes risk off: opposite side to a non-zero position, no flip."""
    if current == 0 or (current > 0) == (signed_qty > 0):
        return False
    return abs(signed_qty) <= abs(current)


def order_price(order: Order, mark: Mark | None) -> tuple[Decimal | None, str | None]:
    """The price valuing the order: its limit price, else its reference price, else the mark."""
    if order.price is not None:
        return order.price, "order"
    if order.reference_price is not None:
        return order.reference_price, "reference"
    if mark is not None:
        return mark.price, "mark"
    return None, None


def valuations(view: RiskView, account: str, today: date) -> dict[str, Valuation]:
    """Every position of ``account`` valued at the current marks."""
    return {
        symbol: value_position(pos, view.marks.get(symbol), today)
        for symbol, pos in view.positions.get(account, {}).items()
    }


def _compliance(order: Order, view: RiskView) -> list[Violation]:
    found = []
    for entry in view.restricted.matches(order.account, "symbol", canonical_symbol(order.symbol)):
        scope = "global" if entry.account is None else "account"
        found.append(Violation(
            "restricted_symbol", "compliance",
            f"{order.symbol} is on the {scope} restricted list: {entry.reason}",
            {"entry_id": entry.id, "scope": scope, "value": entry.value, "reason": entry.reason},
        ))
    asset = base_asset(order.symbol)
    for entry in view.restricted.matches(order.account, "asset", asset):
        scope = "global" if entry.account is None else "account"
        found.append(Violation(
            "restricted_asset", "compliance",
            f"base asset {asset} of {order.symbol} is on the {scope} restricted list: {entry.reason}",
            {"entry_id": entry.id, "scope": scope, "asset": entry.value, "reason": entry.reason},
        ))
    return found


def _esg(order: Order, view: RiskView) -> list[Violation]:
    asset = base_asset(order.symbol)
    exclusion = view.esg.get(asset)
    if exclusion is None:
        return []
    return [Violation(
        "esg_excluded", "esg", f"base asset {asset} is excluded on ESG grounds: {exclusion.reason}",
        {"asset": exclusion.asset, "reason": exclusion.reason, "score": _s(exclusion.score)},
    )]


def evaluate(
    order: Order, view: RiskView, *, today: date, capital: Capital | None = None,
    volatility: VolatilityScaling | None = None,
) -> Assessment:
    """Check ``order`` against every rule.

    ``capital`` is None when the capital rule does not apply; ``volatility`` is
    None when position limits are not volatility-scaled.
    """
    with localcontext(CTX):
        violations: list[Violation] = []
        switch = view.kill_switches.get(order.account)
        if switch is not None and switch.active:
            violations.append(Violation(
                "kill_switch_active", "kill_switch", f"the kill switch of account {order.account} is active",
                {"reason": switch.reason, "set_by": switch.set_by, "at": switch.at.isoformat()},
            ))
        violations += _compliance(order, view)
        violations += _esg(order, view)

        values = valuations(view, order.account, today)
        own = values.get(order.symbol)
        current = own.qty if own is not None else ZERO
        projected = current + order.signed_qty
        reduces = reduces_position(current, order.signed_qty)
        gross = sum((v.exposure for v in values.values()), ZERO)
        day_pnl = sum((v.day_pnl for v in values.values()), ZERO)
        limits = view.limits.effective(order.account)
        price, source = order_price(order, view.marks.get(order.symbol))
        notional = order.qty * price if price is not None else None
        result = Assessment(
            violations, reduces, price, source, notional, current, projected, gross, None, None, day_pnl,
        )

        plimit = view.limits.position_limit(order.account, order.symbol)
        if plimit is not None:
            scaled = result.position_limit = scale_limit(plimit.max_position, volatility)
            if not reduces and abs(projected) > scaled.limit:
                violations.append(Violation(
                    "position_limit_exceeded", "position_limit",
                    f"position in {order.symbol} would be {_s(projected)}, beyond the limit of {_s(scaled.limit)}"
                    + (f" ({scaled.reason})" if volatility is not None else ""),
                    {"limit": _s(scaled.limit), "position": _s(current), "projected": _s(projected),
                     **({"scaling": scaled.detail()} if volatility is not None else {})},
                ))

        needs_price = not reduces and (
            limits.gross_exposure is not None or limits.concentration_pct is not None
            or (capital is not None and capital.problem is None)
        )
        if notional is None:
            if needs_price:
                violations.append(Violation(
                    "price_unavailable", "pricing",
                    f"no price, reference_price or mark for {order.symbol}: cannot value the order",
                    {"symbol": order.symbol},
                ))
        elif not reduces:
            _exposure_rules(order, limits, values, gross, notional, result)
            if capital is not None and capital.problem is None and capital.available is not None:
                result.capital_available = capital.available
                if notional > capital.available:
                    violations.append(Violation(
                        "insufficient_capital", "capital",
                        f"notional {_s(notional)} exceeds the available capital {_s(capital.available)} "
                        f"of strategy {order.strategy}",
                        {"strategy": order.strategy, "available": _s(capital.available), "notional": _s(notional),
                         "currency": capital.currency},
                    ))
        if capital is not None and capital.problem is not None and not reduces:
            violations.append(Violation(
                capital.problem, "capital", capital.message or f"capital of strategy {order.strategy} is unknown",
                {"strategy": order.strategy},
            ))

        if limits.daily_loss is not None and day_pnl < -limits.daily_loss:
            violations.append(Violation(
                "daily_loss_limit_breached", "daily_loss",
                f"P&L since UTC midnight is {_s(day_pnl)}, below the daily loss limit of -{_s(limits.daily_loss)}",
                {"limit": _s(limits.daily_loss), "day_pnl": _s(day_pnl)},
            ))
        return result


def _exposure_rules(
    order: Order, limits: Any, values: Mapping[str, Valuation], gross: Decimal, notional: Decimal, result: Assessment
) -> None:
    """Gross exposure and concentration after adding the order's notional (conservatively, whatever its side)."""
    own = values.get(order.symbol)
    projected_gross = gross + notional
    projected_symbol = (own.exposure if own is not None else ZERO) + notional
    result.projected_gross_exposure = projected_gross
    result.projected_symbol_exposure = projected_symbol
    if limits.gross_exposure is not None and projected_gross > limits.gross_exposure:
        result.violations.append(Violation(
            "gross_exposure_limit_exceeded", "gross_exposure",
            f"gross exposure would be {_s(projected_gross)}, beyond the limit of {_s(limits.gross_exposure)}",
            {"limit": _s(limits.gross_exposure), "gross_exposure": _s(gross), "notional": _s(notional),
             "projected": _s(projected_gross)},
        ))
    floor = limits.concentration_floor if limits.concentration_floor is not None else ZERO
    if limits.concentration_pct is not None and projected_gross > 0 and projected_gross >= floor:
        share = projected_symbol * HUNDRED / projected_gross
        if share > limits.concentration_pct:
            result.violations.append(Violation(
                "concentration_limit_exceeded", "concentration",
                f"{order.symbol} would be {_s(share.quantize(Decimal('0.01')))} % of the gross exposure, "
                f"beyond the limit of {_s(limits.concentration_pct)} %",
                {"limit_pct": _s(limits.concentration_pct), "share_pct": _s(share.quantize(Decimal("0.0001"))),
                 "symbol_exposure": _s(projected_symbol), "gross_exposure": _s(projected_gross),
                 "floor": _s(floor)},
            ))
