"""Shared field types of risk-service's API models (pydantic v2).

Money, quantities and percents are ``Decimal`` on the way in (JSON numbers or
decimal strings) and plain decimal strings on the way out, so no value passes
through a float. Request bodies forbid unknown fields; every bound is explicit.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from sandbox.services.risk.numbers import plain

#: Dots only between non-empty parts, so ``risk.killswitch.<account>`` is always a valid NATS subject.
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_:@-]*(\.[A-Za-z0-9_:@-]+)*$"
STRATEGY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"  # as capital-allocator
ASSET_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.]{0,15}$"
#: Symbols are ``BASE/QUOTE`` (Kraken WS v2 names, e.g. ``XBT/USD``): the asset rules need the base asset.
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.]{0,15}/[A-Za-z0-9][A-Za-z0-9.]{0,15}$"
#: In paths a symbol may also be written ``BASE-QUOTE`` (for clients that cannot send a raw slash).
PATH_SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.]{0,15}[/-][A-Za-z0-9][A-Za-z0-9.]{0,15}$"
FILL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
CLIENT_ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _no_control(text: str) -> str:
    if _CONTROL.search(text):
        raise ValueError("control characters are not allowed")
    return text


def path_symbol(text: str) -> str:
    """A symbol from a path segment: ``xbt-usd`` or ``XBT/USD`` -> ``XBT/USD``."""
    return text.upper().replace("-", "/", 1)


Account = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN, max_length=64)]
Strategy = Annotated[str, StringConstraints(pattern=STRATEGY_PATTERN, max_length=64)]
Asset = Annotated[str, StringConstraints(pattern=ASSET_PATTERN, max_length=16), AfterValidator(str.upper)]
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN, max_length=33), AfterValidator(str.upper)]
Reason = Annotated[
    str,
    StringConstraints(min_length=1, max_length=500, strip_whitespace=True),
    AfterValidator(_no_control),
]
OptionalReason = Annotated[str, StringConstraints(max_length=500, strip_whitespace=True), AfterValidator(_no_control)]

#: A Decimal rendered as a plain string (``"0.26"``, never ``"2.6E-1"``).
DecimalStr = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]


def _decimal_schema(integer_digits: int, decimals: int, positive: bool, maximum: int, description: str) -> WithJsonSchema:
    """OpenAPI for a Decimal field: a decimal string (exact, preferred) or a JSON number."""
    integer = f"(0|[1-9][0-9]{{0,{integer_digits - 1}}})"
    number: dict[str, Any] = {"type": "number", "maximum": maximum}
    number["exclusiveMinimum" if positive else "minimum"] = 0
    return WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": rf"^{integer}(\.[0-9]{{1,{decimals}}})?$"}, number],
            "description": description,
        }
    )


_BIG = Decimal(10) ** 12
Quantity = Annotated[
    Decimal,
    Field(gt=0, le=_BIG, max_digits=32, decimal_places=18, allow_inf_nan=False),
    _decimal_schema(12, 18, True, 10**12, "Positive decimal up to 1e12, at most 18 decimal places."),
]
Price = Quantity
Amount = Annotated[
    Decimal,
    Field(ge=0, le=Decimal(10) ** 15, max_digits=26, decimal_places=8, allow_inf_nan=False),
    _decimal_schema(15, 8, False, 10**15, "Decimal >= 0 up to 1e15 (quote currency), at most 8 decimal places."),
]
PositionSize = Annotated[
    Decimal,
    Field(ge=0, le=_BIG, max_digits=32, decimal_places=18, allow_inf_nan=False),
    _decimal_schema(12, 18, False, 10**12, "Decimal >= 0 up to 1e12 (base units), at most 18 decimal places."),
]
Percent = Annotated[
    Decimal,
    Field(ge=0, le=100, max_digits=12, decimal_places=6, allow_inf_nan=False),
    _decimal_schema(3, 6, False, 100, "Percent, 0..100, at most 6 decimal places."),
]
Score = Percent


class Body(BaseModel):
    """Strict request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class ItemList(BaseModel):
    """A list answer: ``items`` and ``count``."""

    count: int


# --------------------------------------------------------------------------- check-order


class CheckOrderRequest(Body):
    """Body of ``POST /v1/check-order``."""

    account: Account
    strategy: Strategy | None = Field(default=None, description="Strategy; enables the capital rule.")
    symbol: Symbol = Field(description="BASE/QUOTE, e.g. XBT/USD.")
    side: Literal["buy", "sell"]
    qty: Quantity = Field(description="Order quantity in base units.")
    price: Price | None = Field(default=None, description="Limit price (quote per base).")
    reference_price: Price | None = Field(
        default=None, description="Price to value a market order; the mark is used when neither is given."
    )
    client_order_id: Annotated[str, StringConstraints(pattern=CLIENT_ORDER_ID_PATTERN)] | None = Field(
        default=None, description="Echoed back, for the caller's logs."
    )


class ViolationPublic(BaseModel):
    """One failed rule: a stable ``code``, the ``rule`` it belongs to, a message and figures."""

    code: str
    rule: str
    message: str
    detail: dict[str, Any]


class PositionLimitApplied(BaseModel):
    """The position limit a check applied, after volatility scaling."""

    limit: DecimalStr = Field(description="The limit applied: base_limit * factor.")
    base_limit: DecimalStr = Field(description="The account's configured limit in the symbol.")
    factor: DecimalStr = Field(description="clamp(reference / volatility_1m, floor, 1); 1 when not scaled.")
    scaled: bool = Field(description="True when the limit was reduced by the symbol's volatility.")
    reason: str = Field(description="Why the limit is (un)scaled, e.g. the feature server being unavailable.")
    volatility_1m: DecimalStr | None = Field(description="The symbol's 1-minute realised volatility (Feast).")
    reference_volatility: DecimalStr | None
    volatility_as_of: str | None = Field(description="Event time of the volatility feature.")


class CheckOrderResponse(BaseModel):
    """The check's outcome (HTTP 200 whether allowed or not)."""

    allowed: bool
    violations: list[ViolationPublic]
    account: str
    strategy: str | None
    symbol: str
    side: str
    qty: DecimalStr
    client_order_id: str | None
    price: DecimalStr | None = Field(description="Price used to value the order.")
    price_source: Literal["order", "reference", "mark"] | None
    notional: DecimalStr | None
    reduces_position: bool = Field(description="The order only reduces the position (exempt from exposure rules).")
    position: DecimalStr
    projected_position: DecimalStr
    gross_exposure: DecimalStr
    projected_gross_exposure: DecimalStr | None
    day_pnl: DecimalStr
    capital_available: DecimalStr | None
    position_limit: PositionLimitApplied | None = Field(
        default=None, description="The position limit applied (absent when the account has none in the symbol)."
    )
    checked_at: datetime


# --------------------------------------------------------------------------- compliance


class RestrictedCreate(Body):
    """Body of ``POST /v1/compliance/restricted``."""

    kind: Literal["symbol", "asset"] = Field(description="Restrict one symbol, or every symbol with this base asset.")
    value: Annotated[str, StringConstraints(min_length=1, max_length=33)] = Field(
        description="BASE/QUOTE for kind=symbol, an asset code for kind=asset."
    )
    account: Account | None = Field(default=None, description="The account restricted; omitted = every account.")
    reason: Reason

    @model_validator(mode="after")
    def _value_matches_kind(self) -> RestrictedCreate:
        """``value`` must be a symbol or an asset code according to ``kind``; kept upper-case."""
        pattern = SYMBOL_PATTERN if self.kind == "symbol" else ASSET_PATTERN
        if not re.match(pattern, self.value):
            raise ValueError(f"value must match {pattern} for kind={self.kind}")
        self.value = self.value.upper()
        return self


class RestrictedUpdate(Body):
    """Body of ``PATCH /v1/compliance/restricted/{id}``."""

    reason: Reason


class RestrictedPublic(BaseModel):
    """A restricted-list entry."""

    id: int
    kind: str
    value: str
    account: str | None
    scope: Literal["global", "account"]
    reason: str
    created_at: datetime | None
    created_by: str
    updated_at: datetime | None
    updated_by: str


class RestrictedList(ItemList):
    """Restricted-list entries."""

    items: list[RestrictedPublic]


# --------------------------------------------------------------------------- esg


class EsgExclusionCreate(Body):
    """Body of ``POST /v1/esg/exclusions``."""

    asset: Asset
    reason: Reason
    score: Score | None = Field(default=None, description="ESG score 0..100 behind the exclusion, if any.")


class EsgExclusionUpdate(Body):
    """Body of ``PUT /v1/esg/exclusions/{asset}`` (create or replace)."""

    reason: Reason
    score: Score | None = None


class EsgExclusionPublic(BaseModel):
    """An ESG exclusion."""

    asset: str
    reason: str
    score: DecimalStr | None
    updated_at: datetime | None
    updated_by: str


class EsgExclusionList(ItemList):
    """ESG exclusions."""

    items: list[EsgExclusionPublic]


# --------------------------------------------------------------------------- limits


class AccountLimitsUpdate(Body):
    """Body of ``PUT /v1/limits/accounts/{account}`` and ``PUT /v1/limits/defaults`` (replaces every field).

    A null field means "no limit of this account's own": the default applies (or none).
    """

    gross_exposure: Amount | None = Field(default=None, description="Max sum of |position x mark| + order notional.")
    daily_loss: Amount | None = Field(default=None, description="Orders are rejected once today's P&L < -daily_loss.")
    concentration_pct: Percent | None = Field(
        default=None, description="Max share (%) of one symbol in the gross exposure."
    )
    concentration_floor: Amount | None = Field(
        default=None, description="Gross exposure from which the concentration limit applies (default 0)."
    )


class AccountLimitsFields(BaseModel):
    """Account-level limit values (null = none)."""

    gross_exposure: DecimalStr | None
    daily_loss: DecimalStr | None
    concentration_pct: DecimalStr | None
    concentration_floor: DecimalStr | None


class AccountLimitsPublic(AccountLimitsFields):
    """An account's own limits, and the effective ones (defaults filled in)."""

    account: str
    updated_at: datetime | None
    updated_by: str
    effective: AccountLimitsFields


class AccountLimitsList(ItemList):
    """Account limits (the defaults are served at /v1/limits/defaults)."""

    items: list[AccountLimitsPublic]


class PositionLimitUpdate(Body):
    """Body of ``PUT /v1/limits/positions/{account}/{symbol}``."""

    max_position: PositionSize = Field(description="Max absolute position in base units.")


class PositionLimitPublic(BaseModel):
    """A per-symbol position limit."""

    account: str
    symbol: str
    max_position: DecimalStr
    updated_at: datetime | None
    updated_by: str


class PositionLimitList(ItemList):
    """Position limits."""

    items: list[PositionLimitPublic]


# --------------------------------------------------------------------------- kill switch, marks, positions


class KillSwitchUpdate(Body):
    """Body of ``PUT /v1/accounts/{account}/kill-switch``."""

    active: bool
    reason: OptionalReason = Field(default="", description="Why (required when activating).")

    @model_validator(mode="after")
    def _reason_when_active(self) -> KillSwitchUpdate:
        """Activating needs a reason."""
        if self.active and not self.reason:
            raise ValueError("a reason is required to activate the kill switch")
        return self


class KillSwitchPublic(BaseModel):
    """An account's kill-switch state (inactive with ``set_by`` empty when never set)."""

    account: str
    active: bool
    reason: str
    at: datetime | None
    set_by: str
    broadcast: bool | None = Field(default=None, description="On PUT: whether the NATS broadcast was published.")


class MarkUpdate(Body):
    """Body of ``PUT /v1/marks/{symbol}``."""

    price: Price


class MarkPublic(BaseModel):
    """A symbol's mark and its price at the start of the UTC day."""

    symbol: str
    price: DecimalStr
    at: datetime
    source: str
    day_open: DecimalStr


class MarkList(ItemList):
    """Marks."""

    items: list[MarkPublic]


class PositionPublic(BaseModel):
    """One position valued at the current mark."""

    symbol: str
    qty: DecimalStr
    avg_cost: DecimalStr
    mark: DecimalStr
    exposure: DecimalStr
    unrealised: DecimalStr
    realised: DecimalStr
    realised_today: DecimalStr
    day_pnl: DecimalStr
    updated_at: datetime | None


class PositionsPublic(BaseModel):
    """An account's positions and gross exposure."""

    account: str
    positions: list[PositionPublic]
    gross_exposure: DecimalStr
    as_of: datetime


class PnlPublic(BaseModel):
    """An account's P&L since UTC midnight (quote currency; no FX conversion)."""

    account: str
    since: datetime
    realised_today: DecimalStr
    unrealised_today: DecimalStr
    day_pnl: DecimalStr
    unrealised: DecimalStr = Field(description="Unrealised P&L against average cost (all time).")
    realised_total: DecimalStr
    gross_exposure: DecimalStr
    daily_loss_limit: DecimalStr | None
    by_symbol: dict[str, DecimalStr] = Field(description="day_pnl per symbol.")
    as_of: datetime


# --------------------------------------------------------------------------- audit


class AuditEntry(BaseModel):
    """One change to a dataset."""

    dataset: Literal["compliance", "esg", "diversification"]
    id: int
    at: datetime
    actor: str
    actor_kind: str
    action: str
    entity: str
    key: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None


class AuditList(ItemList):
    """Audit entries, newest first."""

    items: list[AuditEntry]


# --------------------------------------------------------------------------- fills (Kafka, not a request body)


class FillEvent(BaseModel):
    """An OMS fill from ``oms.fills`` (unknown fields ignored: the producer may add some)."""

    model_config = ConfigDict(extra="ignore")

    fill_id: Annotated[str, StringConstraints(pattern=FILL_ID_PATTERN)]
    order_id: Annotated[str, StringConstraints(max_length=128)] | None = None
    account: Account
    strategy: Strategy | None = None
    symbol: Symbol
    side: Literal["buy", "sell"]
    qty: Quantity
    price: Price
    fee: Amount = Decimal(0)
    fee_currency: Asset | None = None
    ts: AwareDatetime
