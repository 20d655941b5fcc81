"""API models of universe-service (pydantic v2): request bodies strict, responses public.

Instruments are created and updated by the venue sync only, so the "create"
side of the split is the venue's own record (:class:`~.venue_pairs.VenuePair`);
clients send :class:`DecisionCreate` (approve / exclude) and read the
``*Public`` models.  Decimals travel as JSON strings so no precision is lost.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

ApprovalState = Literal["pending", "approved", "excluded"]
AuditAction = Literal["listed", "updated", "relisted", "delisted", "approved", "excluded"]

#: A Decimal written to JSON as a string in positional notation with its scale
#: (``"0.0000001"``, ``"0.00"``): exact, and readable by any client.
PlainDecimal = Annotated[Decimal, PlainSerializer(lambda d: format(d, "f"), return_type=str, when_used="json")]

#: Venue states in which new orders are accepted (a cancel-only or delisted pair is not tradable).
ORDER_ACCEPTING_STATES = frozenset({"online", "post_only", "limit_only", "reduce_only"})


class DecisionCreate(BaseModel):
    """Body of ``approve`` and ``exclude``: why the decision was taken."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=3, max_length=500, description="Why the instrument is approved or excluded.")

    @field_validator("reason")
    @classmethod
    def _printable(cls, value: str) -> str:
        if any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value):
            raise ValueError("reason must not contain control, format (e.g. bidi) or unassigned characters")
        return value


class FeeTierPublic(BaseModel):
    """From ``volume`` (30-day volume in ``fee_volume_currency``) the fee is ``percent`` %."""

    volume: PlainDecimal
    percent: PlainDecimal


class FeesPublic(BaseModel):
    """Taker and maker fee tiers, ascending by volume."""

    fee_volume_currency: str | None
    taker: list[FeeTierPublic]
    maker: list[FeeTierPublic]


class FeeSchedulePublic(FeesPublic):
    """An instrument's fee tiers, with the quote and its precision (all fees-service needs)."""

    symbol: str
    pair_key: str
    quote: str
    cost_decimals: int | None
    pair_decimals: int


class ApprovalPublic(BaseModel):
    """The trading decision on an instrument."""

    state: ApprovalState
    reason: str | None = None
    by: str | None = None
    at: datetime | None = None


class InstrumentPublic(BaseModel):
    """An instrument as the venue lists it, plus its trading decision."""

    symbol: str = Field(description="Kraken wsname, e.g. XBT/USD")
    altname: str = Field(description="Kraken altname, e.g. XBTUSD")
    pair_key: str = Field(description="Kraken AssetPairs key, e.g. XXBTZUSD")
    base: str
    quote: str
    venue_base: str = Field(description="Kraken asset code of the base, e.g. XXBT")
    venue_quote: str = Field(description="Kraken asset code of the quote, e.g. ZUSD")
    ordermin: PlainDecimal = Field(description="Minimum order volume in the base asset")
    costmin: PlainDecimal | None = Field(description="Minimum order cost in the quote asset")
    tick_size: PlainDecimal = Field(description="Price increment")
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int | None
    lot_multiplier: int | None
    status: str = Field(description="Venue status: online, cancel_only, post_only, limit_only, reduce_only")
    listed: bool = Field(description="False once the venue stopped listing the pair")
    tradable: bool = Field(description="listed, approved, and the venue status accepts new orders")
    approval: ApprovalPublic
    fees: FeesPublic
    first_seen_at: datetime
    synced_at: datetime
    updated_at: datetime


class InstrumentList(BaseModel):
    """A page of instruments, ordered by symbol."""

    items: list[InstrumentPublic]
    total: int = Field(description="Instruments matching the filters")
    limit: int
    offset: int


class AuditEntryPublic(BaseModel):
    """One audit record (append-only)."""

    id: int
    symbol: str
    pair_key: str
    action: AuditAction
    actor: str = Field(description="Subject of the principal, or 'sync:<trigger>' for venue syncs")
    reason: str | None
    changes: dict[str, Any]
    approval_before: ApprovalState | None
    approval_after: ApprovalState | None
    at: datetime


class AuditList(BaseModel):
    """Audit records, newest first; pass ``next_before`` as ``before`` for the next page."""

    items: list[AuditEntryPublic]
    next_before: int | None


class SkippedPairPublic(BaseModel):
    """A pair the venue listed that the sync could not take in."""

    pair_key: str
    reason: str


class SyncReport(BaseModel):
    """Outcome of one sync from the venue."""

    id: int | None = None
    trigger: Literal["startup", "api", "retry"]
    actor: str
    outcome: Literal["ok", "failed"]
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    delisted: int = 0
    skipped: list[SkippedPairPublic] = Field(default_factory=list)
    total: int = Field(0, description="Pairs the venue listed")
    error: str | None = None
    started_at: datetime
    finished_at: datetime
    duration_ms: float


class SyncRunList(BaseModel):
    """Recent syncs, newest first."""

    items: list[SyncReport]
