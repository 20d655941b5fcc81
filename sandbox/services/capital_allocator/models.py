"""API models of capital-allocator (pydantic v2): request bodies (``*Write`` / ``*Create``) and ``*Public`` views.

Money, weights and percents are ``Decimal`` on the way in (JSON numbers or
decimal strings, bounded, limited decimal places) and plain decimal strings on
the way out, so no amount ever passes through a float. Request bodies forbid
unknown fields.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

STRATEGY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
ORDER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
CURRENCY_PATTERN = r"^[A-Za-z0-9]{2,12}$"
#: Free text (reasons): printable, no control characters.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MAX_MONEY = Decimal(10) ** 15


def plain(value: Decimal) -> str:
    """A Decimal as a plain string, its scale kept (``"1000.00"``, never ``"1.0E+3"``)."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


StrategyId = Annotated[str, StringConstraints(pattern=STRATEGY_PATTERN, min_length=1, max_length=64)]
OrderId = Annotated[str, StringConstraints(pattern=ORDER_ID_PATTERN, min_length=1, max_length=128)]
Account = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN, max_length=64)]
Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN), AfterValidator(str.upper)]
Reason = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, max_length=500)]
#: A Decimal rendered as a plain JSON string.
DecimalStr = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]


def _decimal(integer_part: str, decimals: int, maximum: int, positive: bool, description: str) -> WithJsonSchema:
    """OpenAPI for a Decimal input: a decimal string (exact, preferred) or a JSON number."""
    number: dict[str, object] = {"type": "number", "maximum": maximum}
    number["exclusiveMinimum" if positive else "minimum"] = 0
    return WithJsonSchema({
        "anyOf": [{"type": "string", "pattern": rf"^{integer_part}(\.[0-9]{{1,{decimals}}})?$"}, number],
        "description": description,
    })


_MONEY_DIGITS = "(0|[1-9][0-9]{0,14})"
Money = Annotated[
    Decimal, Field(ge=0, le=MAX_MONEY, max_digits=24, decimal_places=8, allow_inf_nan=False),
    _decimal(_MONEY_DIGITS, 8, 10**15, False, "Amount >= 0 up to 1e15, at most 8 decimal places."),
]
PositiveMoney = Annotated[
    Decimal, Field(gt=0, le=MAX_MONEY, max_digits=24, decimal_places=8, allow_inf_nan=False),
    _decimal(_MONEY_DIGITS, 8, 10**15, True, "Amount > 0 up to 1e15, at most 8 decimal places."),
]
Weight = Annotated[
    Decimal, Field(ge=0, le=10**6, max_digits=16, decimal_places=8, allow_inf_nan=False),
    _decimal("(0|[1-9][0-9]{0,6})", 8, 10**6, False, "Relative weight >= 0 (normalised over active strategies)."),
]
Fraction = Annotated[
    Decimal, Field(ge=0, le=1, max_digits=10, decimal_places=8, allow_inf_nan=False),
    _decimal("(0|1)", 8, 1, False, "Fraction of the allocatable capital, 0..1."),
]
Percent = Annotated[
    Decimal, Field(ge=0, le=100, max_digits=8, decimal_places=4, allow_inf_nan=False),
    _decimal("(0|[1-9][0-9]{0,2})", 4, 100, False, "Percent of NAV, 0..100."),
]


class _Body(BaseModel):
    """Strict request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- portfolio


class PortfolioWrite(_Body):
    """Body of ``PUT /v1/portfolio``: the NAV and how much of it stays in cash."""

    nav: Money = Field(description="Net asset value of the portfolio.")
    cash_buffer_pct: Percent = Field(default=Decimal(0), description="Percent of NAV kept unallocated.")
    currency: Currency = Field(default="USD", description="Currency of NAV and allocations.")
    precision: int = Field(default=2, ge=0, le=8, description="Decimal places of allocations (2 = cents).")


class PortfolioPublic(BaseModel):
    """The portfolio as served."""

    nav: DecimalStr
    cash_buffer_pct: DecimalStr
    currency: str
    precision: int
    allocatable: DecimalStr = Field(description="NAV minus the cash buffer, floored to the precision.")
    version: int
    updated_by: str
    updated_at: datetime


# --------------------------------------------------------------------------- targets


class TargetWrite(_Body):
    """Body of ``PUT /v1/strategies/{strategy}/target``.

    The effective bounds are the tighter of the capital and weight bounds;
    weight bounds are fractions of the allocatable capital (NAV minus buffer).
    """

    weight: Weight
    min_capital: Money = Field(default=Decimal(0), description="Least capital while active.")
    max_capital: Money | None = Field(default=None, description="Most capital (absent: no cap).")
    min_weight: Fraction | None = Field(default=None, description="Least share of the allocatable capital.")
    max_weight: Fraction | None = Field(default=None, description="Largest share of the allocatable capital.")

    @model_validator(mode="after")
    def _ordered(self) -> TargetWrite:
        """Minimums may not exceed maximums."""
        if self.max_capital is not None and self.max_capital < self.min_capital:
            raise ValueError("max_capital must be >= min_capital")
        if self.min_weight is not None and self.max_weight is not None and self.max_weight < self.min_weight:
            raise ValueError("max_weight must be >= min_weight")
        return self


class TargetPublic(BaseModel):
    """A strategy's target."""

    weight: DecimalStr
    min_capital: DecimalStr
    max_capital: DecimalStr | None
    min_weight: DecimalStr | None
    max_weight: DecimalStr | None


class CapitalPublic(BaseModel):
    """A strategy's capital: ``available = allocated - reserved`` (negative after a shrink below reservations)."""

    strategy: str
    active: bool
    currency: str | None
    allocated: DecimalStr
    reserved: DecimalStr
    available: DecimalStr
    allocation_id: int | None = Field(description="The allocation run that set ``allocated``.")
    version: int
    updated_at: datetime


class StrategyPublic(CapitalPublic):
    """A registered strategy: its target and its capital."""

    target: TargetPublic
    created_at: datetime
    updated_by: str


class StrategyList(BaseModel):
    """Every registered strategy, ordered by id."""

    items: list[StrategyPublic]
    count: int


# --------------------------------------------------------------------------- allocations


class ActionRequest(_Body):
    """Optional body of ``allocate`` / ``release``: why (kept in the history)."""

    reason: Reason | None = None


class RebalanceRequest(_Body):
    """Body of ``POST /v1/rebalance`` (optional)."""

    dry_run: bool = Field(default=False, description="Compute and return the allocation without storing it.")
    reason: Reason | None = Field(default=None, description="Why (kept in the history).")


class TargetInput(TargetPublic):
    """One active strategy's target as an input of an allocation run."""

    strategy: str


class AllocationInputs(BaseModel):
    """What an allocation run computed from."""

    nav: DecimalStr
    cash_buffer_pct: DecimalStr
    currency: str
    precision: int
    targets: list[TargetInput] = Field(description="The active strategies' targets, by id.")


class AllocationLinePublic(BaseModel):
    """One strategy's outcome."""

    strategy: str
    weight: DecimalStr
    normalised_weight: DecimalStr = Field(description="weight / sum of the active weights.")
    min_capital: DecimalStr = Field(description="Effective minimum (capital and weight bounds, on the grid).")
    max_capital: DecimalStr = Field(description="Effective maximum.")
    allocated: DecimalStr
    previous: DecimalStr = Field(description="Allocation before this run.")
    binding: Literal["min", "max", "none"] = Field(description="Bound the allocation sits at after clamping.")
    share: DecimalStr = Field(description="allocated / allocatable.")


class AllocationOutputs(BaseModel):
    """What an allocation run produced."""

    buffer: DecimalStr = Field(description="NAV minus allocatable capital.")
    allocatable: DecimalStr
    allocated: DecimalStr
    unallocated: DecimalStr
    iterations: int = Field(description="Clamping passes of the algorithm.")
    lines: list[AllocationLinePublic]
    released: list[str] = Field(default_factory=list, description="Strategies set to zero because inactive.")


class AllocationRunPublic(BaseModel):
    """One allocation: who, when, why, inputs and outputs."""

    id: int | None = Field(description="History id (null for a dry run).")
    at: datetime
    actor: str
    actor_kind: str
    trigger: Literal["rebalance", "allocate", "release"]
    strategy: str | None = Field(description="The strategy allocated or released (null for a rebalance).")
    reason: str | None
    rebalanced: bool = Field(description="False when a release could not rebalance the rest (see note).")
    note: str | None
    dry_run: bool = False
    inputs: AllocationInputs
    outputs: AllocationOutputs


class AllocationHistory(BaseModel):
    """A page of allocation runs, newest first."""

    items: list[AllocationRunPublic]
    next_before: int | None = Field(description="Pass as ``before`` for the next (older) page; null at the end.")


class StrategyActionPublic(BaseModel):
    """Outcome of ``allocate`` / ``release``: the strategy's capital and the run."""

    capital: CapitalPublic
    allocation: AllocationRunPublic


class CurrentAllocations(BaseModel):
    """The portfolio and every strategy's capital, from this replica's cache."""

    portfolio: PortfolioPublic | None
    strategies: list[CapitalPublic]
    allocated: DecimalStr
    reserved: DecimalStr


# --------------------------------------------------------------------------- reservations


class ReservationCreate(_Body):
    """Body of ``POST /v1/strategies/{strategy}/reservations``: capital an open order needs."""

    order_id: OrderId = Field(description="The order's id; the key of idempotency.")
    amount: PositiveMoney
    account: Account | None = None


class ConsumeRequest(_Body):
    """Body of ``.../reservations/{order_id}/consume``: the order's cumulative filled notional."""

    consumed_total: Money = Field(description="Cumulative capital used by fills so far (a lower value is ignored).")
    final: bool = Field(default=False, description="The order is done: release whatever remains reserved.")


ReservationStatus = Literal["open", "released", "consumed"]


class ReservationPublic(BaseModel):
    """A reservation; ``remaining`` counts in the strategy's ``reserved`` while ``open``."""

    order_id: str
    strategy: str
    account: str | None
    amount: DecimalStr
    consumed: DecimalStr
    remaining: DecimalStr
    status: ReservationStatus
    created_by: str
    created_at: datetime
    updated_at: datetime
    closed_at: datetime | None


class ReservationOutcome(BaseModel):
    """A reservation after a call, the strategy's capital, and whether the call changed nothing (a replay)."""

    reservation: ReservationPublic
    capital: CapitalPublic
    replayed: bool


class ReservationList(BaseModel):
    """A strategy's reservations, newest first."""

    items: list[ReservationPublic]
    count: int
