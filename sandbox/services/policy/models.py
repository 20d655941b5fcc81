"""API models of policy-service (pydantic v2): strict request bodies, public responses.

Quantities and prices are :class:`~decimal.Decimal` on the way in (decimal
strings, preferred, or JSON numbers — the check route parses JSON numbers as
Decimal from the raw token, never through a float) and plain decimal strings on
the way out. Request bodies forbid unknown fields; every bound is explicit.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sandbox.services.policy.numbers import places

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
#: wsname (``XBT/USD``), altname (``XBTUSD``), pair key (``XXBTZUSD``) or alias (``BTC-USD``).
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$"
CURRENCY_PATTERN = r"^[A-Za-z0-9]{2,12}$"
LABEL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/@-]{0,127}$"

MAX_AMOUNT = Decimal(10) ** 15
MAX_PLACES = 30
MAX_DIGITS = 60

Account = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN, min_length=1, max_length=64)]
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN, min_length=1, max_length=64)]
Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN), AfterValidator(str.upper)]
Label = Annotated[str, StringConstraints(pattern=LABEL_PATTERN, min_length=1, max_length=128)]
Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]


def _bounded_decimal(value: Decimal) -> Decimal:
    """At most 30 significant decimal places and 60 digits (a bigger token is a client bug)."""
    if places(value) > MAX_PLACES:
        raise ValueError(f"at most {MAX_PLACES} decimal places")
    if len(value.as_tuple().digits) > MAX_DIGITS:
        raise ValueError(f"at most {MAX_DIGITS} digits")
    return value


_DECIMAL_SCHEMA = WithJsonSchema({
    "anyOf": [
        {"type": "string", "pattern": r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,30})?$"},
        {"type": "number", "exclusiveMinimum": 0, "maximum": 10**15},
    ],
    "description": "Positive decimal up to 1e15 with at most 30 decimal places; a string keeps it exact.",
})

Amount = Annotated[
    Decimal, Field(gt=0, le=MAX_AMOUNT, allow_inf_nan=False), AfterValidator(_bounded_decimal), _DECIMAL_SCHEMA,
]


def _printable(value: str) -> str:
    if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
        raise ValueError("must not contain control, format or unassigned characters")
    return value


Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=3, max_length=500), AfterValidator(_printable),
]


class _Body(BaseModel):
    """Strict request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------------- check-order


class CheckOrderRequest(_Body):
    """An order to check against the venue's rules, the account's key permissions and policy rules."""

    account: Account = Field(description="Trading account (as in secrets-service).")
    symbol: Symbol = Field(description="wsname (XBT/USD), altname (XBTUSD), pair key (XXBTZUSD) or alias (BTC-USD).")
    side: Side
    type: OrderType
    qty: Amount = Field(description="Order volume in the base asset.")
    price: Amount | None = Field(default=None, description="Limit price (required for limit orders, absent for market).")
    post_only: bool = Field(default=False, strict=True, description="Post-only (maker-only) limit order.")
    reference_price: Amount | None = Field(
        default=None,
        description="Price used to value a market order (cost minimum, notional maximum); ignored for limit orders.",
    )
    strategy: Label | None = Field(default=None, description="Strategy placing the order (echoed).")
    client_order_id: Label | None = Field(default=None, description="Caller's order id (echoed).")

    @model_validator(mode="after")
    def _shape(self) -> CheckOrderRequest:
        if self.type == "limit" and self.price is None:
            raise ValueError("a limit order needs a price")
        if self.type == "market" and self.price is not None:
            raise ValueError("a market order has no price (value it with reference_price)")
        if self.type == "market" and self.post_only:
            raise ValueError("post_only applies to limit orders only")
        return self


class ViolationPublic(BaseModel):
    """One reason the order is not allowed (``field``, ``limit`` and ``actual`` only when meaningful)."""

    code: str = Field(description="Stable machine code, e.g. qty_below_ordermin.")
    message: str
    field: str | None = Field(default=None, description="Request field at fault.")
    limit: str | None = Field(default=None, description="The limit the order breaks.")
    actual: str | None = Field(default=None, description="The order's value.")


class InstrumentSummary(BaseModel):
    """The instrument the order was checked against (from universe-service)."""

    symbol: str
    altname: str
    pair_key: str
    base: str
    quote: str
    status: str
    listed: bool
    approval: str
    ordermin: str
    costmin: str | None
    tick_size: str
    pair_decimals: int
    lot_decimals: int


class CheckOrderPublic(BaseModel):
    """The decision: allowed when there is no violation; every violation is listed."""

    allowed: bool
    violations: list[ViolationPublic]
    checked_at: datetime
    instrument: InstrumentSummary | None
    account: str
    symbol: str = Field(description="The instrument's wsname when known, else the symbol as requested.")
    side: Side
    type: OrderType
    notional: str | None = Field(description="qty x (limit price or reference_price), in the quote asset.")
    price_source: Literal["limit_price", "reference_price"] | None
    venue_status: str | None = Field(description="Venue-wide SystemStatus (null when not known).")
    rules_version: int | None = Field(description="Version of the account's rules used (null: no rules).")
    unchecked: list[str] = Field(description="Codes that could not be evaluated (e.g. no price for a market order).")
    strategy: str | None = None
    client_order_id: str | None = None


# ----------------------------------------------------------------------------------------- rules


class RulesUpdate(_Body):
    """Body of ``PUT /v1/accounts/{account}/rules``: the account's complete rules (create or replace).

    ``allowed_symbols`` null = any symbol; ``[]`` = none. ``max_order_notional``
    maps a quote asset (``USD`` or ``ZUSD``, ``EUR``, ``XBT``) to the largest
    order value in that asset; orders quoted in an asset without an entry are
    not limited.
    """

    allowed_symbols: list[Symbol] | None = Field(default=None, max_length=1000)
    max_order_notional: dict[Currency, Amount] | None = Field(default=None, max_length=64)
    reason: Reason | None = Field(default=None, description="Why (kept in the audit trail).")

    @field_validator("allowed_symbols")
    @classmethod
    def _upper_unique(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        return list(dict.fromkeys(s.upper() for s in value))


class RulesPublic(BaseModel):
    """An account's policy rules."""

    account: str
    allowed_symbols: list[str] | None
    max_order_notional: dict[str, str] | None
    version: int = Field(description="Increases with every write; send it as If-Match to update safely.")
    created_at: datetime
    updated_at: datetime
    updated_by: str


class RulesList(BaseModel):
    """Rules of every account (ordered by account)."""

    items: list[RulesPublic]
    total: int


class RulesAuditEntry(BaseModel):
    """One change to an account's rules (append-only)."""

    id: int
    account: str
    action: Literal["created", "replaced", "deleted"]
    actor: str
    reason: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    version: int
    request_id: str | None
    at: datetime


class RulesAuditList(BaseModel):
    """Audit entries, newest first; pass ``next_before`` as ``before`` for the next page."""

    items: list[RulesAuditEntry]
    next_before: int | None


# ------------------------------------------------------------------------------------- reference


class ReferencePublic(BaseModel):
    """State of the reference data this replica holds."""

    instruments: int
    instruments_loaded_at: datetime | None
    instruments_error: str | None
    instruments_skipped: list[dict[str, str]]
    venue_status: str | None
    venue_status_at: datetime | None
    venue_error: str | None
    permissions_cached: int
    rules: int
    rules_revision: int
    kraken_credentials: str = Field(description="loaded, absent or not configured (values never shown).")


class RefreshReport(BaseModel):
    """What ``POST /v1/refresh`` reloaded."""

    instruments: int
    instruments_changed: bool
    venue_status: str | None
    permissions_dropped: int
    rules: int
    errors: dict[str, str]
