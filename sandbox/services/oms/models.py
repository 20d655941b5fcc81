"""API models of oms-service (pydantic v2): strict request bodies, public views.

Quantities and prices are ``Decimal`` on the way in (decimal strings, preferred,
or JSON numbers parsed from the raw token by :mod:`sandbox.services.kit.decimal_json`) and plain
decimal strings on the way out. Request bodies forbid unknown fields.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
STRATEGY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
CLIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,31}$"
ORDER_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MAX_AMOUNT = Decimal(10) ** 15
MAX_PLACES = 18
INT32 = 2**31


def plain(value: Decimal) -> str:
    """A Decimal as a plain string without exponent or trailing zeros (``1.5``, ``0``)."""
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


def _places(value: Decimal) -> Decimal:
    """At most 18 significant decimal places (trailing zeros do not count)."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -exponent <= MAX_PLACES:
        return value  # within the limit as written: no need to strip trailing zeros (normalize is slow)
    exponent = value.normalize().as_tuple().exponent
    if isinstance(exponent, int) and -exponent > MAX_PLACES:
        raise ValueError(f"at most {MAX_PLACES} decimal places")
    return value


_AMOUNT_SCHEMA = WithJsonSchema({
    "anyOf": [
        {"type": "string", "pattern": r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,18})?$"},
        {"type": "number", "exclusiveMinimum": 0, "maximum": 10**15},
    ],
    "description": "Positive decimal below 1e15 with at most 18 decimal places; a string keeps it exact.",
})

Amount = Annotated[Decimal, Field(gt=0, lt=MAX_AMOUNT, allow_inf_nan=False), AfterValidator(_places), _AMOUNT_SCHEMA]
DecimalStr = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]
Account = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN, min_length=1, max_length=64)]
Strategy = Annotated[str, StringConstraints(pattern=STRATEGY_PATTERN, min_length=1, max_length=64)]
ClientOrderId = Annotated[str, StringConstraints(pattern=CLIENT_ID_PATTERN, min_length=1, max_length=64)]
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN, min_length=1, max_length=32)]
Side = Literal["buy", "sell"]
OrderType = Literal["market", "limit"]
StateName = Literal["pending_new", "new", "partially_filled", "filled", "canceled", "rejected", "expired"]


class _Body(BaseModel):
    """Strict request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class OrderCreate(_Body):
    """Body of ``POST /v1/orders``."""

    account: Account
    strategy: Strategy | None = None
    client_order_id: ClientOrderId = Field(description="The caller's id; a repeat returns the original order.")
    symbol: Symbol = Field(description="Instrument: wsname (XBT/USD), altname, pair key or v2 symbol.")
    side: Side
    type: OrderType
    qty: Amount
    price: Amount | None = Field(default=None, description="Limit price (limit orders only).")
    post_only: StrictBool = False
    userref: int | None = Field(default=None, ge=-INT32, lt=INT32, strict=True,
                                description="Kraken user reference (32-bit signed).")
    reference_price: Amount | None = Field(
        default=None, description="Valuation price of a market order for the checks and capital reservation.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> OrderCreate:
        """Limit orders need a price; market orders have none and cannot be post-only."""
        if self.type == "limit" and self.price is None:
            raise ValueError("a limit order needs a price")
        if self.type == "market" and self.price is not None:
            raise ValueError("a market order has no price (use reference_price to value it)")
        if self.type == "market" and self.post_only:
            raise ValueError("a market order cannot be post_only")
        return self


class Reason(BaseModel):
    """Why an order was rejected (or a note on it): a stable code, a message, where it came from."""

    code: str
    message: str
    source: str = Field(description="oms, policy, risk, fees, capital or venue.")
    detail: Any = None


class TransitionPublic(BaseModel):
    """One recorded state change."""

    from_state: str | None
    to_state: str
    reason: str
    at: datetime
    detail: Any = None


class OrderPublic(BaseModel):
    """An order as the OMS tracks it."""

    id: str
    account: str
    strategy: str | None
    client_order_id: str
    symbol: str
    side: str
    type: str
    qty: DecimalStr
    price: DecimalStr | None
    post_only: bool
    userref: int | None
    reference_price: DecimalStr | None
    state: StateName
    txid: str | None = Field(description="The venue's order id once acknowledged.")
    filled_qty: DecimalStr
    remaining_qty: DecimalStr
    avg_price: DecimalStr | None
    fees: DecimalStr
    fee_currency: str | None
    estimated_fee: DecimalStr | None
    reasons: list[Reason]
    capital_reserved: DecimalStr | None = Field(description="Strategy capital reserved at the allocator.")
    source: Literal["api", "adopted"]
    created_by: str
    created_at: datetime
    updated_at: datetime
    transitions: list[TransitionPublic] | None = Field(default=None, description="Only on GET /v1/orders/{id}.")


class OrderList(BaseModel):
    """A page of orders, newest first; ``next_before`` continues the listing."""

    items: list[OrderPublic]
    count: int
    next_before: str | None


class FillPublic(BaseModel):
    """One execution, as published on ``oms.fills``."""

    fill_id: str
    order_id: str
    client_order_id: str
    account: str
    strategy: str | None
    symbol: str
    side: str
    qty: DecimalStr
    price: DecimalStr
    cost: DecimalStr
    fee: DecimalStr
    fee_currency: str
    liquidity: Literal["maker", "taker"]
    ts: datetime
    source: str


class FillList(BaseModel):
    """An order's fills, oldest first."""

    items: list[FillPublic]
    count: int


class PositionPublic(BaseModel):
    """One account's position in one symbol (average cost)."""

    symbol: str
    qty: DecimalStr
    avg_price: DecimalStr
    realized_pnl: DecimalStr
    fees: DecimalStr
    bought: DecimalStr
    sold: DecimalStr
    fills: int
    updated_at: datetime


class PositionList(BaseModel):
    """Every position of an account."""

    account: str
    positions: list[PositionPublic]


class CancelAllRequest(_Body):
    """Optional body of the cancel-all endpoints."""

    reason: Annotated[str, StringConstraints(pattern=TEXT_PATTERN, min_length=1, max_length=200)] | None = None
    symbol: Symbol | None = Field(default=None, description="Only this instrument's orders.")


class CancelAllResult(BaseModel):
    """What a cancel-all did: orders cancelled, already done, and failures (with the reason)."""

    scope: str
    requested: int
    canceled: list[str]
    pending: list[str] = Field(description="Not acknowledged by the venue yet: cancelled on acknowledgement.")
    already_done: list[str]
    failed: list[dict[str, str]]


class Difference(BaseModel):
    """One difference reconciliation found between the venue and the OMS, and what it did about it."""

    kind: str
    order_id: str | None = None
    txid: str | None = None
    fill_id: str | None = None
    asset: str | None = None
    expected: str | None = None
    actual: str | None = None
    action: str
    detail: Any = None


class ReconciliationPublic(BaseModel):
    """One reconciliation run."""

    id: int
    trigger: Literal["startup", "manual", "periodic"]
    requested_by: str
    started_at: datetime
    finished_at: datetime | None
    status: Literal["running", "ok", "failed"]
    summary: dict[str, Any]
    error: str | None
    differences: list[Difference]


class ReconciliationList(BaseModel):
    """Reconciliation history, newest first."""

    items: list[ReconciliationPublic]
    count: int


class ReconcileRequest(_Body):
    """Optional body of ``POST /v1/reconcile``."""

    lookback_s: float | None = Field(default=None, gt=0, le=90 * 86_400,
                                     description="TradesHistory window (default: since the last run).")
