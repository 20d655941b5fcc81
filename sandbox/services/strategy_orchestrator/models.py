"""API models of strategy-orchestrator (pydantic v2): ``*Create`` / ``*Update`` request bodies and ``*Public`` views.

Request bodies forbid unknown fields. Identifiers follow the patterns the other
trading services use (strategy ids as capital-allocator and risk-service,
accounts as secrets-service, symbols as Kraken ``wsname`` like risk-service),
so an id accepted here is accepted there. Capital amounts are ``Decimal`` in
(JSON numbers or decimal strings, bounded) and plain decimal strings out.
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
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

from sandbox.services.strategy_orchestrator.machine import Action, State
from sandbox.services.strategy_orchestrator.params import MAX_PARAMS_BYTES, MAX_PARAMS_DEPTH, check_params

STRATEGY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
KIND_PATTERN = r"^[a-z][a-z0-9_.-]{0,63}$"
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9.]{0,15}/[A-Za-z0-9][A-Za-z0-9.]{0,15}$"
#: Free text (names, reasons): no control characters.
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"
MAX_MONEY = Decimal(10) ** 15
MAX_ACCOUNTS = 32
MAX_SYMBOLS = 256


def plain(value: Decimal) -> str:
    """A Decimal as a plain string (``"1000.00"``, never ``"1E+3"``)."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def _unique(values: list[str]) -> list[str]:
    if len(set(values)) != len(values):
        raise ValueError("entries must be unique")
    return values


StrategyId = Annotated[str, StringConstraints(pattern=STRATEGY_PATTERN, min_length=1, max_length=64)]
Kind = Annotated[str, StringConstraints(pattern=KIND_PATTERN, min_length=1, max_length=64)]
Name = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, min_length=1, max_length=128), AfterValidator(_not_blank)]
Reason = Annotated[str, StringConstraints(pattern=TEXT_PATTERN, max_length=500)]
Account = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN, min_length=1, max_length=64)]
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN, min_length=3, max_length=33)]
Accounts = Annotated[list[Account], Field(min_length=1, max_length=MAX_ACCOUNTS), AfterValidator(_unique)]
Symbols = Annotated[list[Symbol], Field(min_length=1, max_length=MAX_SYMBOLS), AfterValidator(_unique)]
Params = Annotated[
    dict[str, Any],
    AfterValidator(check_params),
    Field(description=f"Strategy parameters: a JSON object of at most {MAX_PARAMS_BYTES} bytes "
                      f"(compact JSON), nested at most {MAX_PARAMS_DEPTH} levels."),
]
DecimalStr = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]


def _decimal_schema(integer_part: str, decimals: int, maximum: int, description: str) -> WithJsonSchema:
    """OpenAPI for a Decimal input: a decimal string (exact, preferred) or a JSON number."""
    return WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": rf"^{integer_part}(\.[0-9]{{1,{decimals}}})?$"},
            {"type": "number", "minimum": 0, "maximum": maximum},
        ],
        "description": description,
    })


Money = Annotated[
    Decimal, Field(ge=0, le=MAX_MONEY, max_digits=24, decimal_places=8, allow_inf_nan=False),
    _decimal_schema("(0|[1-9][0-9]{0,14})", 8, 10**15, "Amount >= 0 up to 1e15, at most 8 decimal places."),
]
Weight = Annotated[
    Decimal, Field(ge=0, le=10**6, max_digits=16, decimal_places=8, allow_inf_nan=False),
    _decimal_schema("(0|[1-9][0-9]{0,6})", 8, 10**6, "Relative weight >= 0 (normalised over active strategies)."),
]
Fraction = Annotated[
    Decimal, Field(ge=0, le=1, max_digits=10, decimal_places=8, allow_inf_nan=False),
    _decimal_schema("(0|1)", 8, 1, "Fraction of the allocatable capital, 0..1."),
]


class _Body(BaseModel):
    """Strict request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class CapitalTarget(_Body):
    """The capital target sent to capital-allocator (``PUT /v1/strategies/{id}/target``) when the strategy starts."""

    weight: Weight
    min_capital: Money = Field(default=Decimal(0), description="Least capital while active.")
    max_capital: Money | None = Field(default=None, description="Most capital (absent: no cap).")
    min_weight: Fraction | None = Field(default=None, description="Least share of the allocatable capital.")
    max_weight: Fraction | None = Field(default=None, description="Largest share of the allocatable capital.")

    @model_validator(mode="after")
    def _ordered(self) -> CapitalTarget:
        """Minimums may not exceed maximums."""
        if self.max_capital is not None and self.max_capital < self.min_capital:
            raise ValueError("max_capital must be >= min_capital")
        if self.min_weight is not None and self.max_weight is not None and self.max_weight < self.min_weight:
            raise ValueError("max_weight must be >= min_weight")
        return self

    def wire(self) -> dict[str, str | None]:
        """The target as JSON for capital-allocator and for storage (decimal strings, exact)."""
        def text(v: Decimal | None) -> str | None:
            return None if v is None else plain(v)

        return {
            "weight": plain(self.weight), "min_capital": plain(self.min_capital),
            "max_capital": text(self.max_capital), "min_weight": text(self.min_weight),
            "max_weight": text(self.max_weight),
        }


class CapitalTargetPublic(BaseModel):
    """A capital target as served."""

    weight: DecimalStr
    min_capital: DecimalStr
    max_capital: DecimalStr | None
    min_weight: DecimalStr | None
    max_weight: DecimalStr | None


class StrategyCreate(_Body):
    """Body of ``POST /v1/strategies``."""

    id: StrategyId = Field(description="Unique strategy id (the key at capital-allocator, risk and the OMS).")
    name: Name
    kind: Kind = Field(description="Strategy implementation, e.g. ``market_making``.")
    params: Params = Field(default_factory=dict)
    accounts: Accounts = Field(description="Trading accounts the strategy may use.")
    symbols: Symbols = Field(description="Instruments (Kraken wsname, e.g. ``XBT/USD``) the strategy trades.")
    capital: CapitalTarget


class StrategyUpdate(_Body):
    """Body of ``PATCH /v1/strategies/{id}``: only the fields given change.

    The definition changes only while the strategy is not live (registered,
    paused, stopped, failed); the capital target only while it holds no
    capital (registered, stopped, failed).
    """

    name: Name | None = None
    params: Params | None = None
    accounts: Accounts | None = None
    symbols: Symbols | None = None
    capital: CapitalTarget | None = None

    @model_validator(mode="after")
    def _something(self) -> StrategyUpdate:
        """An update changes at least one field; null is not a value for any of them."""
        given = self.model_fields_set
        if not given:
            raise ValueError("give at least one of name, params, accounts, symbols, capital")
        nulls = sorted(f for f in given if getattr(self, f) is None)
        if nulls:
            raise ValueError(f"{', '.join(nulls)} cannot be null")
        return self


class TransitionRequest(_Body):
    """Optional body of the lifecycle actions: why (kept with the transition)."""

    reason: Reason | None = None


class AllowedActionPublic(BaseModel):
    """An action valid from the current state and where it leads."""

    action: Action
    to: State


class WorkflowSummary(BaseModel):
    """The strategy's latest orchestration workflow."""

    id: str
    kind: Literal["start", "stop"]
    status: Literal["running", "succeeded", "failed", "cancelled"]
    outcome: str | None
    started_at: datetime
    finished_at: datetime | None


class StrategyPublic(BaseModel):
    """A registered strategy: its definition and lifecycle state."""

    id: str
    name: str
    kind: str
    params: dict[str, Any]
    accounts: list[str]
    symbols: list[str]
    capital: CapitalTargetPublic
    state: State
    state_reason: str | None = Field(description="Reason given with the last transition.")
    state_changed_at: datetime
    allowed_actions: list[AllowedActionPublic]
    workflow: WorkflowSummary | None
    version: int = Field(description="Changes with every write; send it as If-Match to update safely.")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class StrategyList(BaseModel):
    """A page of strategies ordered by id."""

    items: list[StrategyPublic]
    count: int
    next_after: str | None = Field(description="Pass as ``after`` for the next page; null at the end.")


class TransitionPublic(BaseModel):
    """One recorded transition (``from`` is null for the registration)."""

    model_config = ConfigDict(populate_by_name=True)

    id: int
    strategy: str
    from_state: State | None = Field(alias="from", serialization_alias="from")
    to_state: State = Field(alias="to", serialization_alias="to")
    action: str = Field(description="register, start, pause, resume, stop, fail, or workflow:<kind>.")
    who: str
    who_kind: str = Field(description="user, service, or system (the orchestrator's own workflows).")
    when: datetime
    reason: str | None
    workflow_id: str | None


class TransitionList(BaseModel):
    """A page of transitions, oldest first."""

    items: list[TransitionPublic]
    next_after: int | None = Field(description="Pass as ``after`` for the next page; null at the end.")


class StepPublic(BaseModel):
    """One attempt of one step of a workflow, and its outcome."""

    step: str
    attempt: int
    outcome: Literal["ok", "skipped", "retry", "refused", "exhausted"]
    status_code: int | None
    detail: dict[str, Any] | None
    at: datetime


class WorkflowPublic(WorkflowSummary):
    """An orchestration workflow with every step attempt."""

    strategy: str
    owner: str | None = Field(description="The replica running it (while running).")
    lease_until: datetime | None
    steps: list[StepPublic]


class WorkflowList(BaseModel):
    """A strategy's workflows, newest first."""

    items: list[WorkflowPublic]
