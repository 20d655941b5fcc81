"""The in-memory instrument snapshot that serves every read.

A :class:`Snapshot` is immutable: a reload builds a new one and swaps the
reference, so a request never sees half an update.  Each instrument's JSON (and
its fee schedule's) is rendered once per snapshot; a read is a dictionary
lookup plus a bytes copy, with no database round trip and no per-request
pydantic serialisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sandbox.services.universe.models import (
    ORDER_ACCEPTING_STATES,
    ApprovalPublic,
    FeeSchedulePublic,
    FeesPublic,
    FeeTierPublic,
    InstrumentPublic,
)
from sandbox.services.universe.venue_pairs import FeeTier, VenuePair

#: Common names Kraken spells differently (its wsname/altname use XBT and XDG).
ALIASES = (("BTC", "XBT"), ("DOGE", "XDG"))
#: Longest name a lookup considers (anything longer is simply unknown).
MAX_NAME = 64
#: Rendered list pages kept per snapshot (the unfiltered listing is the hot one).
MAX_PAGES = 128


@dataclass(frozen=True)
class InstrumentRecord:
    """An instrument as stored: venue fields, listing, decision and timestamps."""

    pair: VenuePair
    listed: bool
    approval: str
    approval_reason: str | None
    approval_by: str | None
    approval_at: datetime | None
    first_seen_at: datetime
    synced_at: datetime
    updated_at: datetime

    @property
    def tradable(self) -> bool:
        """Listed, approved, and the venue accepts new orders on it."""
        return self.listed and self.approval == "approved" and self.pair.status in ORDER_ACCEPTING_STATES


def _tiers(tiers: Iterable[FeeTier]) -> list[FeeTierPublic]:
    return [FeeTierPublic(volume=t.volume, percent=t.percent) for t in tiers]


def to_public(rec: InstrumentRecord) -> InstrumentPublic:
    """The API view of a record."""
    p = rec.pair
    return InstrumentPublic(
        symbol=p.symbol,
        altname=p.altname,
        pair_key=p.pair_key,
        base=p.base,
        quote=p.quote,
        venue_base=p.venue_base,
        venue_quote=p.venue_quote,
        ordermin=p.ordermin,
        costmin=p.costmin,
        tick_size=p.tick_size,
        pair_decimals=p.pair_decimals,
        lot_decimals=p.lot_decimals,
        cost_decimals=p.cost_decimals,
        lot_multiplier=p.lot_multiplier,
        status=p.status,
        listed=rec.listed,
        tradable=rec.tradable,
        approval=ApprovalPublic(
            state=rec.approval,  # type: ignore[arg-type]
            reason=rec.approval_reason,
            by=rec.approval_by,
            at=rec.approval_at,
        ),
        fees=FeesPublic(
            fee_volume_currency=p.fee_volume_currency, taker=_tiers(p.fees_taker), maker=_tiers(p.fees_maker)
        ),
        first_seen_at=rec.first_seen_at,
        synced_at=rec.synced_at,
        updated_at=rec.updated_at,
    )


def to_fee_schedule(rec: InstrumentRecord) -> FeeSchedulePublic:
    """The fee-tier view of a record."""
    p = rec.pair
    return FeeSchedulePublic(
        symbol=p.symbol,
        pair_key=p.pair_key,
        quote=p.quote,
        cost_decimals=p.cost_decimals,
        pair_decimals=p.pair_decimals,
        fee_volume_currency=p.fee_volume_currency,
        taker=_tiers(p.fees_taker),
        maker=_tiers(p.fees_maker),
    )


def name_candidates(name: str) -> list[str]:
    """Normalised spellings to try for a requested symbol, most literal first."""
    base = name.strip().upper()
    out = [base]
    for sep in ("-", "_"):
        if sep in base:
            out.append(base.replace(sep, "/"))
    for common, kraken in ALIASES:
        out.extend(c.replace(common, kraken) for c in list(out) if common in c)
    return list(dict.fromkeys(out))


class Snapshot:
    """All instruments at one database revision, indexed for lookups and pre-rendered as JSON."""

    def __init__(self, records: Iterable[InstrumentRecord], revision: int) -> None:
        """Index ``records`` (listed instruments win name clashes with delisted ones)."""
        self.revision = revision
        ordered = sorted(records, key=lambda r: (r.pair.symbol.upper(), not r.listed, r.pair.pair_key))
        self.records: dict[str, InstrumentRecord] = {r.pair.pair_key: r for r in ordered}
        self.order: list[str] = [r.pair.pair_key for r in ordered]
        names: dict[str, str] = {}
        for rec in sorted(ordered, key=lambda r: r.listed):  # delisted first, so listed ones overwrite
            for name in (rec.pair.pair_key, rec.pair.altname, rec.pair.symbol):
                names[name.upper()] = rec.pair.pair_key
        self.names = names
        self.json: dict[str, bytes] = {k: to_public(r).model_dump_json().encode() for k, r in self.records.items()}
        self.fees_json: dict[str, bytes] = {
            k: to_fee_schedule(r).model_dump_json().encode() for k, r in self.records.items()
        }
        self._pages: dict[tuple[object, ...], bytes] = {}

    def __len__(self) -> int:
        """Number of instruments (listed or not)."""
        return len(self.records)

    def resolve(self, name: str) -> str | None:
        """The pair key for a wsname (``XBT/USD``), altname (``XBTUSD``), pair key or alias, else None."""
        if not name or len(name) > MAX_NAME:
            return None
        for candidate in name_candidates(name):
            key = self.names.get(candidate)
            if key is not None:
                return key
        return None

    def select(
        self,
        *,
        approval: str | None = None,
        status: str | None = None,
        base: str | None = None,
        quote: str | None = None,
        listed: bool | None = None,
        tradable: bool | None = None,
    ) -> list[str]:
        """Pair keys matching every given filter, in symbol order (asset filters match either spelling)."""
        base_u = base.upper() if base else None
        quote_u = quote.upper() if quote else None
        out = []
        for key in self.order:
            rec = self.records[key]
            p = rec.pair
            if approval is not None and rec.approval != approval:
                continue
            if status is not None and p.status != status:
                continue
            if base_u is not None and base_u not in (p.base.upper(), p.venue_base.upper()):
                continue
            if quote_u is not None and quote_u not in (p.quote.upper(), p.venue_quote.upper()):
                continue
            if listed is not None and rec.listed != listed:
                continue
            if tradable is not None and rec.tradable != tradable:
                continue
            out.append(key)
        return out

    def page(self, filters: dict[str, str | bool | None], *, limit: int, offset: int) -> bytes:
        """The rendered ``InstrumentList`` for filters (see :meth:`select`) and a page, memoised per snapshot."""
        memo_key = (*sorted(filters.items()), limit, offset)
        body = self._pages.get(memo_key)
        if body is None:
            body = self.render_list(self.select(**filters), limit=limit, offset=offset)  # type: ignore[arg-type]
            if len(self._pages) >= MAX_PAGES:
                self._pages.clear()
            self._pages[memo_key] = body
        return body

    def render_list(self, keys: list[str], *, limit: int, offset: int) -> bytes:
        """The ``InstrumentList`` JSON for a page of ``keys``, joined from pre-rendered items."""
        page = keys[offset : offset + limit]
        items = b",".join(self.json[k] for k in page)
        return b'{"items":[%s],"total":%d,"limit":%d,"offset":%d}' % (items, len(keys), limit, offset)

    def counts(self) -> dict[str, int]:
        """Listed instruments by approval state (for the gauge)."""
        out = {"pending": 0, "approved": 0, "excluded": 0}
        for rec in self.records.values():
            if rec.listed:
                out[rec.approval] = out.get(rec.approval, 0) + 1
        return out
