"""Kraken AssetPairs entries as typed instruments, and the diff a sync applies.

Pure functions, no I/O: :func:`parse_assetpairs` turns the raw response body
into :class:`VenuePair` values (numbers as :class:`~decimal.Decimal` from the
raw JSON tokens, never through float) plus the pairs it had to skip, and
:func:`plan_sync` compares them with what the database holds.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

#: Largest number of decimals accepted for prices, lots and costs.
MAX_DECIMALS = 30
#: Longest text field accepted from the venue (keys, names, asset codes, status).
MAX_TEXT = 64


class VenueFormatError(ValueError):
    """The response as a whole is not a Kraken AssetPairs response."""


class VenueReportedError(ValueError):
    """The venue answered with a non-empty Kraken ``error`` array."""

    def __init__(self, errors: list[str]) -> None:
        """``errors`` as the venue sent them (``EService:Unavailable``, ...)."""
        super().__init__(", ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class FeeTier:
    """One fee tier: from ``volume`` (30-day volume in the fee volume currency) the fee is ``percent`` %."""

    volume: Decimal
    percent: Decimal


@dataclass(frozen=True)
class VenuePair:
    """The venue-owned fields of one instrument (what a sync compares and writes)."""

    pair_key: str
    symbol: str
    altname: str
    base: str
    quote: str
    venue_base: str
    venue_quote: str
    ordermin: Decimal
    costmin: Decimal | None
    tick_size: Decimal
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int | None
    lot_multiplier: int | None
    status: str
    fee_volume_currency: str | None
    fees_taker: tuple[FeeTier, ...]
    fees_maker: tuple[FeeTier, ...]

    def comparable(self) -> dict[str, Any]:
        """Field -> JSON-safe value (Decimals as their text) for audit diffs."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


def plain(number: Decimal) -> str:
    """A Decimal in positional notation, its scale kept (``0.0000001``, not ``1E-7``; ``0.00`` stays)."""
    return format(number, "f")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, tuple):
        return [[plain(t.volume), plain(t.percent)] for t in value]
    return value


@dataclass(frozen=True)
class SkippedPair:
    """A pair the venue listed that could not be taken in, and why."""

    pair_key: str
    reason: str


@dataclass(frozen=True)
class ParsedPairs:
    """The usable pairs (by pair key) and the skipped ones."""

    pairs: dict[str, VenuePair]
    skipped: list[SkippedPair]


def load_response(body: bytes | str) -> dict[str, Any]:
    """The ``result`` object of an AssetPairs response body, numbers as Decimal.

    Raises :class:`VenueReportedError` for a Kraken error array and
    :class:`VenueFormatError` for anything that is not the documented shape.
    """
    try:
        doc = json.loads(body, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError) as exc:
        raise VenueFormatError(f"the response is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise VenueFormatError("the response is not a JSON object")
    errors = doc.get("error", [])
    if not isinstance(errors, list):
        raise VenueFormatError("'error' is not a list")
    if errors:
        raise VenueReportedError([str(e) for e in errors])
    result = doc.get("result")
    if not isinstance(result, dict):
        raise VenueFormatError("'result' is missing or not an object")
    return result


def parse_assetpairs(body: bytes | str) -> ParsedPairs:
    """Parse an AssetPairs response body; invalid entries are skipped with a reason, not fatal."""
    result = load_response(body)
    pairs: dict[str, VenuePair] = {}
    skipped: list[SkippedPair] = []
    symbols: dict[str, str] = {}
    altnames: dict[str, str] = {}
    for key, entry in result.items():
        try:
            pair = parse_pair(key, entry)
        except ValueError as exc:
            skipped.append(SkippedPair(str(key)[:MAX_TEXT], str(exc)))
            continue
        clash = symbols.get(pair.symbol.upper()) or altnames.get(pair.altname.upper())
        if clash is not None:
            skipped.append(SkippedPair(key, f"symbol {pair.symbol} or altname {pair.altname} is also used by {clash}"))
            continue
        symbols[pair.symbol.upper()] = key
        altnames[pair.altname.upper()] = key
        pairs[key] = pair
    return ParsedPairs(pairs, skipped)


def parse_pair(key: Any, entry: Any) -> VenuePair:
    """One ``result`` entry as a :class:`VenuePair`; ``ValueError`` names the offending field."""
    key = _text(key, "pair key")
    if not isinstance(entry, Mapping):
        raise ValueError("entry is not an object")
    altname = _text(entry.get("altname"), "altname")
    wsname = entry.get("wsname")
    symbol = _text(wsname, "wsname") if wsname is not None else altname
    venue_base = _text(entry.get("base"), "base")
    venue_quote = _text(entry.get("quote"), "quote")
    base, quote = symbol.split("/", 1) if symbol.count("/") == 1 else (venue_base, venue_quote)
    pair_decimals = _int(entry.get("pair_decimals"), "pair_decimals", 0, MAX_DECIMALS)
    tick = entry.get("tick_size")
    # Older AssetPairs responses had no tick_size: the price grid was 10^-pair_decimals.
    tick_size = _decimal(tick, "tick_size") if tick is not None else Decimal(1).scaleb(-pair_decimals)
    if tick_size <= 0:
        raise ValueError("tick_size must be positive")
    ordermin = _decimal(entry.get("ordermin"), "ordermin")
    costmin = entry.get("costmin")
    return VenuePair(
        pair_key=key,
        symbol=symbol,
        altname=altname,
        base=_text(base, "base of wsname"),
        quote=_text(quote, "quote of wsname"),
        venue_base=venue_base,
        venue_quote=venue_quote,
        ordermin=ordermin,
        costmin=_decimal(costmin, "costmin") if costmin is not None else None,
        tick_size=tick_size,
        pair_decimals=pair_decimals,
        lot_decimals=_int(entry.get("lot_decimals"), "lot_decimals", 0, MAX_DECIMALS),
        cost_decimals=_opt_int(entry.get("cost_decimals"), "cost_decimals", 0, MAX_DECIMALS),
        lot_multiplier=_opt_int(entry.get("lot_multiplier"), "lot_multiplier", 1, 1_000_000),
        status=_text(entry.get("status", "online"), "status"),
        fee_volume_currency=_opt_text(entry.get("fee_volume_currency"), "fee_volume_currency"),
        fees_taker=_tiers(entry.get("fees"), "fees", required=True),
        fees_maker=_tiers(entry.get("fees_maker"), "fees_maker", required=False),
    )


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} is missing or not a string")
    if len(value) > MAX_TEXT or any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError(f"{name} is longer than {MAX_TEXT} characters or has control characters")
    return value


def _opt_text(value: Any, name: str) -> str | None:
    return None if value is None else _text(value, name)


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} is missing or not an integer")
    if not low <= value <= high:
        raise ValueError(f"{name}={value} is outside {low}..{high}")
    return value


def _opt_int(value: Any, name: str, low: int, high: int) -> int | None:
    return None if value is None else _int(value, name, low, high)


def _decimal(value: Any, name: str, *, allow_negative: bool = False) -> Decimal:
    """A Decimal from a Kraken number: a JSON string ("0.0001"), an int or a Decimal token."""
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise ValueError(f"{name} is missing or not a number")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{name}={value!r} is not a number") from exc
    if not number.is_finite() or (number < 0 and not allow_negative):
        raise ValueError(f"{name}={value!r} must be a finite, non-negative number")
    if number != 0 and (number.adjusted() > 30 or number.adjusted() < -MAX_DECIMALS):
        raise ValueError(f"{name}={value!r} is out of range")
    return number


def _tiers(value: Any, name: str, *, required: bool) -> tuple[FeeTier, ...]:
    if value is None and not required:
        return ()
    if not isinstance(value, list) or (required and not value):
        raise ValueError(f"{name} is missing or not a list of [volume, percent] tiers")
    tiers: list[FeeTier] = []
    for i, tier in enumerate(value):
        if not isinstance(tier, list) or len(tier) != 2:
            raise ValueError(f"{name}[{i}] is not a [volume, percent] pair")
        volume = _decimal(tier[0], f"{name}[{i}].volume")
        percent = _decimal(tier[1], f"{name}[{i}].percent")
        if percent > 100:
            raise ValueError(f"{name}[{i}].percent={percent} is above 100")
        if tiers and volume <= tiers[-1].volume:
            raise ValueError(f"{name}[{i}].volume={volume} does not increase")
        tiers.append(FeeTier(volume, percent))
    return tuple(tiers)


# ----------------------------------------------------------------------------- sync plan


@dataclass(frozen=True)
class StoredPair:
    """An instrument as the database holds it: its venue fields and whether it is still listed."""

    pair: VenuePair
    listed: bool


@dataclass
class SyncPlan:
    """What a sync writes: new, changed, relisted and delisted instruments."""

    added: list[VenuePair] = field(default_factory=list)
    #: (new fields, {field: {"from": old, "to": new}}); includes relisted instruments.
    updated: list[tuple[VenuePair, dict[str, Any]]] = field(default_factory=list)
    relisted: set[str] = field(default_factory=set)
    unchanged: list[str] = field(default_factory=list)
    delisted: list[VenuePair] = field(default_factory=list)

    @property
    def changes(self) -> int:
        """How many instruments the sync writes."""
        return len(self.added) + len(self.updated) + len(self.delisted)


def plan_sync(stored: Mapping[str, StoredPair], incoming: Mapping[str, VenuePair], keep: set[str]) -> SyncPlan:
    """Compare the database with the venue.

    ``keep`` holds pair keys the venue listed but that were skipped as invalid:
    they are neither updated nor delisted.  Numbers compare by value, so the
    venue re-spelling ``0.5`` as ``0.50`` is not a change.
    """
    plan = SyncPlan()
    for key, pair in incoming.items():
        current = stored.get(key)
        if current is None:
            plan.added.append(pair)
            continue
        changes = diff_fields(current.pair, pair)
        if not current.listed:
            changes["listed"] = {"from": False, "to": True}
            plan.relisted.add(key)
        if changes:
            plan.updated.append((pair, changes))
        else:
            plan.unchanged.append(key)
    for key, current in stored.items():
        if current.listed and key not in incoming and key not in keep:
            plan.delisted.append(current.pair)
    return plan


def diff_fields(old: VenuePair, new: VenuePair) -> dict[str, Any]:
    """``{field: {"from": old, "to": new}}`` for every venue field that changed."""
    changes: dict[str, Any] = {}
    for f in fields(VenuePair):
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before != after:
            changes[f.name] = {"from": _jsonable(before), "to": _jsonable(after)}
    return changes
