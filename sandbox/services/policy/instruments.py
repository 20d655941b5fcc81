"""Instruments as policy needs them, parsed from universe-service documents, in an immutable snapshot.

universe-service's ``GET /v1/instruments`` items carry ``symbol``, ``altname``,
``pair_key``, ``ordermin``, ``costmin``, ``tick_size``, ``pair_decimals``,
``lot_decimals``, ``status``, ``listed`` and ``approval.state``. Numbers arrive
as decimal strings and are parsed as :class:`~decimal.Decimal` (never through a
float). A malformed item is skipped with a reason rather than failing the load.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from sandbox.services.policy.numbers import plain

#: Common names Kraken spells differently (its wsname/altname use XBT and XDG).
ALIASES = (("BTC", "XBT"), ("DOGE", "XDG"))
#: Longest requested name considered for a lookup.
MAX_NAME = 64


class InstrumentError(ValueError):
    """An instrument document from universe-service is unusable."""


@dataclass(frozen=True)
class Instrument:
    """One instrument: the venue limits and the trading decision policy checks against."""

    symbol: str
    altname: str
    pair_key: str
    base: str
    quote: str
    venue_quote: str
    ordermin: Decimal
    costmin: Decimal | None
    tick_size: Decimal
    pair_decimals: int
    lot_decimals: int
    status: str
    listed: bool
    approval: str
    approval_reason: str | None = None
    #: The response's ``instrument`` object, built once per snapshot.
    summary: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def names(self) -> frozenset[str]:
        """Every upper-case spelling of this instrument (symbol, altname, pair key)."""
        return frozenset({self.symbol.upper(), self.altname.upper(), self.pair_key.upper()})


def _text(doc: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = doc.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value or len(value) > MAX_NAME:
        raise InstrumentError(f"{key}={value!r} is not a non-empty string of at most {MAX_NAME} characters")
    return value


def _decimal(doc: Mapping[str, Any], key: str, *, positive: bool = False, optional: bool = False) -> Decimal | None:
    raw = doc.get(key)
    if raw is None and optional:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int | Decimal):
        raise InstrumentError(f"{key}={raw!r} is not a decimal")
    try:
        value = Decimal(raw)
    except InvalidOperation as exc:
        raise InstrumentError(f"{key}={raw!r} is not a decimal") from exc
    if not value.is_finite() or value < 0 or (positive and value == 0):
        raise InstrumentError(f"{key}={raw!r} must be a finite {'positive' if positive else 'non-negative'} number")
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int) or not -40 <= exponent <= 40 or len(value.as_tuple().digits) > 60:
        raise InstrumentError(f"{key}={raw!r} is out of range")
    return value


def _decimals(doc: Mapping[str, Any], key: str) -> int:
    value = doc.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 30:
        raise InstrumentError(f"{key}={value!r} is not an integer in 0..30")
    return value


def parse_instrument(doc: Any) -> Instrument:
    """An :class:`Instrument` from one universe-service item; :class:`InstrumentError` when unusable."""
    if not isinstance(doc, Mapping):
        raise InstrumentError("instrument is not an object")
    approval = doc.get("approval")
    state = approval.get("state") if isinstance(approval, Mapping) else approval
    if state not in ("pending", "approved", "excluded"):
        raise InstrumentError(f"approval state {state!r} is unknown")
    reason = approval.get("reason") if isinstance(approval, Mapping) else None
    ordermin = _decimal(doc, "ordermin")
    tick = _decimal(doc, "tick_size", positive=True)
    assert ordermin is not None and tick is not None
    inst = Instrument(
        symbol=_text(doc, "symbol"),
        altname=_text(doc, "altname"),
        pair_key=_text(doc, "pair_key"),
        base=_text(doc, "base"),
        quote=_text(doc, "quote"),
        venue_quote=_text(doc, "venue_quote", required=False) or _text(doc, "quote"),
        ordermin=ordermin,
        costmin=_decimal(doc, "costmin", optional=True),
        tick_size=tick,
        pair_decimals=_decimals(doc, "pair_decimals"),
        lot_decimals=_decimals(doc, "lot_decimals"),
        status=_text(doc, "status"),
        listed=doc.get("listed", True) is not False,
        approval=state,
        approval_reason=reason if isinstance(reason, str) else None,
    )
    inst.summary.update(summary(inst))
    return inst


def summary(inst: Instrument) -> dict[str, Any]:
    """The ``instrument`` object of a check response (JSON-ready, decimals as strings)."""
    return {
        "symbol": inst.symbol,
        "altname": inst.altname,
        "pair_key": inst.pair_key,
        "base": inst.base,
        "quote": inst.quote,
        "status": inst.status,
        "listed": inst.listed,
        "approval": inst.approval,
        "ordermin": plain(inst.ordermin),
        "costmin": None if inst.costmin is None else plain(inst.costmin),
        "tick_size": plain(inst.tick_size),
        "pair_decimals": inst.pair_decimals,
        "lot_decimals": inst.lot_decimals,
    }


def name_candidates(name: str) -> list[str]:
    """Normalised spellings to try for a requested symbol, most literal first (``btc-usd`` -> ``XBT/USD``)."""
    base = name.strip().upper()
    out = [base]
    for sep in ("-", "_"):
        if sep in base:
            out.append(base.replace(sep, "/"))
    for common, kraken in ALIASES:
        out.extend(c.replace(common, kraken) for c in list(out) if common in c)
    return list(dict.fromkeys(out))


class Snapshot:
    """Every instrument universe-service listed at one load, indexed by every spelling."""

    def __init__(self, instruments: Iterable[Instrument], *, skipped: Iterable[tuple[str, str]] = (),
                 digest: str = "") -> None:
        """Index ``instruments``; listed instruments win name clashes with delisted ones."""
        ordered = sorted(instruments, key=lambda i: (i.listed, i.symbol.upper()))
        self.by_key: dict[str, Instrument] = {i.pair_key: i for i in ordered}
        names: dict[str, Instrument] = {}
        for inst in ordered:  # delisted first, so listed ones overwrite
            for name in inst.names:
                names[name] = inst
        self.names = names
        self.skipped = list(skipped)
        self.digest = digest
        self._memo: dict[str, Instrument | None] = {}

    def __len__(self) -> int:
        """Number of instruments."""
        return len(self.by_key)

    def resolve(self, name: str) -> Instrument | None:
        """The instrument called ``name`` (any spelling, case-insensitive), else None."""
        hit = self._memo.get(name, self)  # self = not memoised yet
        if hit is not self:
            return hit  # type: ignore[return-value]
        found = None
        if len(name) <= MAX_NAME:
            for candidate in name_candidates(name):
                found = self.names.get(candidate)
                if found is not None:
                    break
        if len(self._memo) < 10_000:
            self._memo[name] = found
        return found


def parse_listing(items: Iterable[Any]) -> tuple[list[Instrument], list[tuple[str, str]]]:
    """Parse universe-service items: (instruments, [(name, reason) skipped])."""
    good: list[Instrument] = []
    skipped: list[tuple[str, str]] = []
    for item in items:
        try:
            good.append(parse_instrument(item))
        except InstrumentError as exc:
            name = item.get("pair_key") if isinstance(item, Mapping) else None
            skipped.append((str(name)[:MAX_NAME], str(exc)))
    return good, skipped
