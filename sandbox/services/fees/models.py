"""API models of fees-service (pydantic v2), split Create / Public per resource.

Money, quantities and percents are ``Decimal`` on the way in (JSON numbers or
strings) and plain decimal strings on the way out, so no value ever passes
through a float. Request bodies forbid unknown fields; every bound is explicit.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sandbox.services.fees.tiers import FeeSchedule, FeeTier, ScheduleError, TierChoice, normalise_currency, plain

#: Instrument symbols: Kraken WS names (``BTC/USD``) or REST names (``XBTUSD``, ``XXBTZUSD``).
SYMBOL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,23}(/[A-Za-z0-9][A-Za-z0-9._-]{0,23})?$"
ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"
FILL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
CURRENCY_PATTERN = r"^[A-Za-z0-9]{2,12}$"

#: Symbols are case-insensitive and kept upper-case (as the venue spells them).
Symbol = Annotated[str, StringConstraints(pattern=SYMBOL_PATTERN, max_length=49), AfterValidator(str.upper)]
Account = Annotated[str, StringConstraints(pattern=ACCOUNT_PATTERN, max_length=64)]
FillId = Annotated[str, StringConstraints(pattern=FILL_ID_PATTERN, max_length=128)]
Currency = Annotated[str, StringConstraints(pattern=CURRENCY_PATTERN), AfterValidator(str.upper)]

#: A Decimal rendered as a plain string (``"0.26"``, never ``"2.6E-1"``), its scale kept (``"22.00"``).
DecimalStr = Annotated[Decimal, PlainSerializer(plain, return_type=str, when_used="json")]


def _normal(value: Decimal) -> str:
    return plain(value.normalize())


#: A volume: a plain string without trailing zeros (``"4000.002"``, not ``"4000.0020000"``).
VolumeStr = Annotated[Decimal, PlainSerializer(_normal, return_type=str, when_used="json")]

_BIG = Decimal(10) ** 12


def _decimal_schema(integer_part: str, decimals: int, maximum: int, positive: bool, description: str) -> WithJsonSchema:
    """OpenAPI for a Decimal field: a decimal string (preferred, exact) or a JSON number."""
    number: dict[str, object] = {"type": "number", "maximum": maximum}
    number["exclusiveMinimum" if positive else "minimum"] = 0
    return WithJsonSchema(
        {
            "anyOf": [{"type": "string", "pattern": rf"^{integer_part}(\.[0-9]{{1,{decimals}}})?$"}, number],
            "description": description,
        }
    )


_UP_TO_12_DIGITS = "(0|[1-9][0-9]{0,11})"
Quantity = Annotated[
    Decimal, Field(gt=0, le=_BIG, max_digits=32, decimal_places=18, allow_inf_nan=False),
    _decimal_schema(_UP_TO_12_DIGITS, 18, 10**12, True, "Positive decimal below 1e12, at most 18 decimal places."),
]
Price = Quantity
FeeAmount = Annotated[
    Decimal, Field(ge=0, le=_BIG, max_digits=32, decimal_places=18, allow_inf_nan=False),
    _decimal_schema(_UP_TO_12_DIGITS, 18, 10**12, False, "Decimal >= 0 below 1e12, at most 18 decimal places."),
]
Rate = Annotated[
    Decimal, Field(gt=0, le=Decimal(10) ** 9, max_digits=32, decimal_places=18, allow_inf_nan=False),
    _decimal_schema("(0|[1-9][0-9]{0,8})", 18, 10**9, True, "Positive decimal below 1e9."),
]
Threshold = Annotated[
    Decimal, Field(ge=0, le=Decimal(10) ** 15, max_digits=26, decimal_places=8, allow_inf_nan=False),
    _decimal_schema("(0|[1-9][0-9]{0,14})", 8, 10**15, False, "30-day USD volume from which the tier applies."),
]
Percent = Annotated[
    Decimal, Field(ge=0, le=100, max_digits=12, decimal_places=8, allow_inf_nan=False),
    _decimal_schema("(0|[1-9][0-9]?)", 8, 100, False, "Fee in percent of cost, 0..100."),
]
TierPair = tuple[Threshold, Percent]

Side = Literal["buy", "sell"]
Liquidity = Literal["maker", "taker"]

#: Fills further in the future than this are refused (clock skew allowance).
FUTURE_SKEW = timedelta(minutes=5)
#: No venue fill predates this.
EPOCH_FLOOR = datetime(2009, 1, 3, tzinfo=timezone.utc)


class _Body(BaseModel):
    """Strict request body: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


# --------------------------------------------------------------------------- schedules


class ScheduleCreate(_Body):
    """Body of ``PUT /v1/schedules/{symbol}``: a Kraken-AssetPairs-shaped fee schedule."""

    quote: Currency = Field(description="Quote currency (fees are charged in it), e.g. USD or ZUSD.")
    quote_decimals: int = Field(ge=0, le=18, description="Quote precision (Kraken cost_decimals).")
    fee_volume_currency: Currency = Field(default="USD", description="Currency of the volume thresholds.")
    fees: list[TierPair] = Field(
        min_length=1, max_length=32, description="Taker tiers: [[30-day volume from, percent], ...]."
    )
    fees_maker: list[TierPair] | None = Field(
        default=None, max_length=32, description="Maker tiers; omitted means maker = taker."
    )

    @model_validator(mode="after")
    def _usable(self) -> ScheduleCreate:
        """The tiers must form a usable schedule (first at 0, strictly increasing)."""
        self.to_schedule("CHECK")
        return self

    def to_schedule(self, symbol: str) -> FeeSchedule:
        """The domain schedule for ``symbol`` (source ``manual``)."""
        taker = tuple(FeeTier(v, p) for v, p in self.fees)
        maker = tuple(FeeTier(v, p) for v, p in self.fees_maker) if self.fees_maker else taker
        try:
            return FeeSchedule(
                symbol=symbol,
                quote=normalise_currency(self.quote),
                quote_decimals=self.quote_decimals,
                taker=taker,
                maker=maker,
                fee_volume_currency=normalise_currency(self.fee_volume_currency),
                source="manual",
            )
        except ScheduleError as exc:
            raise ValueError(str(exc)) from exc


class SchedulePublic(BaseModel):
    """A fee schedule as served."""

    symbol: str
    quote: str
    quote_decimals: int
    fee_volume_currency: str
    fees: list[list[str]] = Field(description="Taker tiers as [volume, percent] strings.")
    fees_maker: list[list[str]] = Field(description="Maker tiers as [volume, percent] strings.")
    source: Literal["universe", "manual"]
    updated_at: datetime | None

    @classmethod
    def of(cls, schedule: FeeSchedule) -> SchedulePublic:
        """The public view of a domain schedule."""
        return cls(
            symbol=schedule.symbol,
            quote=schedule.quote,
            quote_decimals=schedule.quote_decimals,
            fee_volume_currency=schedule.fee_volume_currency,
            fees=[t.as_pair() for t in schedule.taker],
            fees_maker=[t.as_pair() for t in schedule.maker],
            source=schedule.source,
            updated_at=schedule.updated_at,
        )


class ScheduleList(BaseModel):
    """Every schedule cached by this replica."""

    items: list[SchedulePublic]
    count: int


# --------------------------------------------------------------------------- fills


class FillCreate(_Body):
    """One execution, as OMS publishes it on ``oms.fills`` or posts to ``POST /v1/fills``."""

    fill_id: FillId = Field(description="Unique fill id; a repeated id is not counted twice.")
    account: Account
    symbol: Symbol
    side: Side
    qty: Quantity
    price: Price
    fee: FeeAmount = Field(default=Decimal(0), description="Fee the venue charged (quote currency).")
    liquidity: Liquidity
    ts: AwareDatetime = Field(description="Execution time (RFC 3339 with offset).")
    quote_usd_rate: Rate | None = Field(
        default=None, description="USD per unit of the quote currency, for non-USD quotes (optional)."
    )

    @field_validator("ts")
    @classmethod
    def _plausible_time(cls, value: datetime) -> datetime:
        """Refuse times before 2009 or more than 5 minutes in the future."""
        if value < EPOCH_FLOOR:
            raise ValueError("ts is before 2009-01-03")
        if value > datetime.now(timezone.utc) + FUTURE_SKEW:
            raise ValueError("ts is more than 5 minutes in the future")
        return value.astimezone(timezone.utc)


class FillEvent(FillCreate):
    """A fill read from Kafka: same rules, but extra fields from newer producers are ignored."""

    model_config = ConfigDict(extra="ignore")


class FillRecorded(BaseModel):
    """Outcome of posting a fill."""

    fill_id: str
    status: Literal["recorded", "duplicate"]
    usd_notional: VolumeStr | None = Field(
        description="USD volume the fill added (null for a duplicate, or when the quote has no USD rate)."
    )


# --------------------------------------------------------------------------- volume and tiers


class TierPublic(BaseModel):
    """The tier a volume selects in one maker or taker schedule."""

    index: int = Field(description="0-based position in the schedule.")
    volume: DecimalStr = Field(description="Threshold of this tier (30-day USD volume, inclusive).")
    percent: DecimalStr
    next_volume: DecimalStr | None = Field(description="Threshold of the next tier; null at the top.")
    next_percent: DecimalStr | None
    volume_to_next: VolumeStr | None = Field(description="USD volume still needed for the next tier.")


class InstrumentTiers(BaseModel):
    """Maker and taker tiers of one instrument for an account."""

    symbol: str
    taker: TierPublic
    maker: TierPublic


class VolumePublic(BaseModel):
    """An account's 30-day volume and its current tier per cached instrument."""

    account: str
    window_days: int
    volume_usd: VolumeStr
    fill_count: int
    unpriced: dict[str, VolumeStr] = Field(
        description="Notional per quote currency that could not be converted to USD (not counted)."
    )
    as_of: datetime
    instruments: list[InstrumentTiers]


# --------------------------------------------------------------------------- estimate


class EstimateRequest(_Body):
    """Body of ``POST /v1/estimate``."""

    account: Account
    symbol: Symbol
    side: Side
    qty: Quantity
    order_type: Literal["limit", "market"] = "limit"
    price: Price | None = Field(default=None, description="Limit price; optional for market orders.")
    reference_price: Price | None = Field(
        default=None, description="Expected fill price of a market order without a price."
    )
    liquidity: Liquidity = Field(default="taker", description="maker or taker (market orders are always taker).")

    @model_validator(mode="after")
    def _priced(self) -> EstimateRequest:
        """A limit order needs a price; a market order a price or a reference price, and takes liquidity."""
        if self.order_type == "limit":
            if self.price is None:
                raise ValueError("a limit order needs a price")
            if self.reference_price is not None:
                raise ValueError("reference_price is only for market orders")
        else:
            if self.price is None and self.reference_price is None:
                raise ValueError("a market order needs a price or a reference_price")
            if self.liquidity == "maker":
                raise ValueError("a market order takes liquidity: liquidity must be taker")
        return self


class EstimatePublic(BaseModel):
    """A fee estimate: cost and fee in the quote currency, rate and tier."""

    account: str
    symbol: str
    side: Side
    order_type: Literal["limit", "market"]
    liquidity: Liquidity
    qty: DecimalStr
    price: DecimalStr
    price_source: Literal["price", "reference_price"]
    currency: str = Field(description="Quote currency of cost and fee.")
    decimals: int = Field(description="Quote precision cost and fee are rounded to.")
    cost: DecimalStr
    fee: DecimalStr
    rate: DecimalStr = Field(description="Fee rate in percent of cost.")
    rounding: Literal["ROUND_HALF_UP", "ROUND_UP"]
    minimum_fee_applied: bool = Field(description="True when the fee was raised to one quote unit.")
    volume_usd: VolumeStr = Field(description="30-day USD volume the tier was chosen from.")
    tier: TierPublic
    schedule_source: Literal["universe", "manual"]


def tier_public(choice: TierChoice, volume_usd: Decimal) -> TierPublic:
    """The public view of the tier a volume selects."""
    nxt = choice.next_tier
    return TierPublic.model_construct(  # computed values of the fields' types: no validation pass
        index=choice.index,
        volume=choice.tier.volume,
        percent=choice.tier.percent,
        next_volume=nxt.volume if nxt else None,
        next_percent=nxt.percent if nxt else None,
        volume_to_next=max(nxt.volume - volume_usd, Decimal(0)) if nxt else None,
    )
