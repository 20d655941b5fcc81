"""Fee schedules: maker/taker tiers keyed by 30-day volume, and tier selection.

A schedule mirrors Kraken's AssetPairs entry: ``fees`` (taker) and
``fees_maker`` (maker) are arrays of ``[volume, percent]`` where ``volume`` is
the 30-day traded volume (in ``fee_volume_currency``, USD) from which the tier
applies and ``percent`` the fee in percent of the order's cost. A tier applies
from its threshold *inclusive*: with tiers ``[[0, 0.26], [50000, 0.24]]`` an
account with exactly 50,000 USD of volume pays 0.24 %.

Pure logic, no I/O: unit-tested without servers.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

Liquidity = Literal["maker", "taker"]

#: Quote currency codes whose notional counts 1:1 as USD volume (Kraken's ``ZUSD`` and ``USD``).
USD_CODES = frozenset({"USD", "ZUSD"})
#: Upper bound of a tier's percent (a sanity bound; Kraken's are below 1 %).
MAX_PERCENT = Decimal(100)
#: Upper bound of a volume threshold (1e15 USD is far above any venue's top tier).
MAX_THRESHOLD = Decimal(10) ** 15
#: Most tiers a schedule may hold (Kraken has 9 or 10).
MAX_TIERS = 32


class ScheduleError(ValueError):
    """A fee schedule that cannot be used (empty, unordered, out of bounds)."""


@dataclass(frozen=True, slots=True)
class FeeTier:
    """One tier: from ``volume`` (inclusive, USD over 30 days) the fee is ``percent`` % of cost."""

    volume: Decimal
    percent: Decimal

    def as_pair(self) -> list[str]:
        """The tier as Kraken's ``[volume, percent]`` with plain decimal strings."""
        return [plain(self.volume), plain(self.percent)]


@dataclass(frozen=True, slots=True)
class TierChoice:
    """The tier an account's volume selects, and the next one up (if any)."""

    index: int
    tier: FeeTier
    next_tier: FeeTier | None


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """The fee schedule of one instrument (cached in memory, persisted in PostgreSQL)."""

    symbol: str
    quote: str
    quote_decimals: int
    taker: tuple[FeeTier, ...]
    maker: tuple[FeeTier, ...]
    fee_volume_currency: str = "USD"
    source: Literal["universe", "manual"] = "manual"
    updated_at: datetime | None = None
    _taker_keys: tuple[Decimal, ...] = field(default=(), repr=False, compare=False)
    _maker_keys: tuple[Decimal, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        """Validate both tier lists and precompute the bisect keys."""
        check_tiers(self.taker, "taker (fees)")
        check_tiers(self.maker, "maker (fees_maker)")
        if not 0 <= self.quote_decimals <= 18:
            raise ScheduleError(f"quote_decimals must be between 0 and 18, got {self.quote_decimals}")
        object.__setattr__(self, "_taker_keys", tuple(t.volume for t in self.taker))
        object.__setattr__(self, "_maker_keys", tuple(t.volume for t in self.maker))

    def tiers(self, liquidity: Liquidity) -> tuple[FeeTier, ...]:
        """The maker or taker tiers."""
        return self.maker if liquidity == "maker" else self.taker

    def choose(self, liquidity: Liquidity, volume: Decimal) -> TierChoice:
        """The tier that ``volume`` (30-day USD) selects for ``liquidity``."""
        tiers = self.tiers(liquidity)
        keys = self._maker_keys if liquidity == "maker" else self._taker_keys
        index = select_tier_index(keys, volume)
        return TierChoice(index, tiers[index], tiers[index + 1] if index + 1 < len(tiers) else None)


def plain(value: Decimal) -> str:
    """A Decimal as a plain string (no exponent): ``Decimal('1E+2')`` -> ``'100'``."""
    text = format(value, "f")
    return "0" if text in ("-0", "") else text


def to_decimal(value: object) -> Decimal:
    """A Decimal from a JSON token (str, int or Decimal; floats go through ``str``)."""
    if isinstance(value, bool):
        raise ScheduleError(f"not a number: {value!r}")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, (int, str)):
        try:
            result = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise ScheduleError(f"not a number: {value!r}") from exc
    elif isinstance(value, float):
        result = Decimal(repr(value))
    else:
        raise ScheduleError(f"not a number: {value!r}")
    if not result.is_finite():
        raise ScheduleError(f"not a finite number: {value!r}")
    return result


def parse_tiers(raw: object, what: str = "tiers") -> tuple[FeeTier, ...]:
    """Kraken's ``[[volume, percent], ...]`` into validated :class:`FeeTier` s."""
    if not isinstance(raw, (list, tuple)):
        raise ScheduleError(f"{what} must be an array of [volume, percent] pairs")
    tiers: list[FeeTier] = []
    for position, item in enumerate(raw):
        if not isinstance(item, (list, tuple)) or len(item) != 2:
            raise ScheduleError(f"{what}[{position}] must be a [volume, percent] pair")
        tiers.append(FeeTier(to_decimal(item[0]), to_decimal(item[1])))
    result = tuple(tiers)
    check_tiers(result, what)
    return result


def check_tiers(tiers: Sequence[FeeTier], what: str = "tiers") -> None:
    """Raise :class:`ScheduleError` unless the tiers form a usable schedule.

    Rules: 1..MAX_TIERS tiers; the first starts at volume 0 (so every volume has
    a tier); thresholds strictly increase; 0 <= percent <= 100; thresholds
    within [0, 1e15].
    """
    if not tiers:
        raise ScheduleError(f"{what}: at least one tier is required")
    if len(tiers) > MAX_TIERS:
        raise ScheduleError(f"{what}: at most {MAX_TIERS} tiers, got {len(tiers)}")
    if tiers[0].volume != 0:
        raise ScheduleError(f"{what}: the first tier must start at volume 0, got {plain(tiers[0].volume)}")
    previous: Decimal | None = None
    for position, tier in enumerate(tiers):
        if not (tier.volume.is_finite() and tier.percent.is_finite()):
            raise ScheduleError(f"{what}[{position}]: numbers must be finite")
        if not 0 <= tier.volume <= MAX_THRESHOLD:
            raise ScheduleError(f"{what}[{position}]: volume must be between 0 and 1e15")
        if not 0 <= tier.percent <= MAX_PERCENT:
            raise ScheduleError(f"{what}[{position}]: percent must be between 0 and 100")
        if previous is not None and tier.volume <= previous:
            raise ScheduleError(f"{what}[{position}]: volume thresholds must strictly increase")
        previous = tier.volume


def select_tier_index(thresholds: Sequence[Decimal], volume: Decimal) -> int:
    """Index of the last tier whose threshold is <= ``volume`` (thresholds sorted, first is 0).

    A negative volume (impossible from fills, but defensive) selects the first tier.
    """
    return max(bisect.bisect_right(thresholds, volume) - 1, 0)


def select_tier(tiers: Sequence[FeeTier], volume: Decimal) -> FeeTier:
    """The tier of ``tiers`` that a 30-day ``volume`` selects (threshold inclusive)."""
    return tiers[select_tier_index([t.volume for t in tiers], volume)]


def schedule_from_kraken(
    symbol: str,
    pair: dict[str, object],
    *,
    quote: str | None = None,
    quote_decimals: int | None = None,
    source: Literal["universe", "manual"] = "universe",
) -> FeeSchedule:
    """A schedule from a Kraken-AssetPairs-shaped mapping.

    Reads ``fees`` (taker), ``fees_maker`` (maker; absent means the pair has no
    maker/taker split, so maker = taker), ``fee_volume_currency``, the quote
    currency (``quote``) and its precision (``cost_decimals``, else
    ``quote_decimals``, else ``pair_decimals``). Keyword arguments override.
    """
    taker = parse_tiers(pair.get("fees"), "fees")
    maker_raw = pair.get("fees_maker")
    maker = parse_tiers(maker_raw, "fees_maker") if maker_raw not in (None, []) else taker
    quote_code = quote or pair.get("quote")
    if not isinstance(quote_code, str) or not quote_code:
        raise ScheduleError("the quote currency is missing")
    decimals = quote_decimals
    if decimals is None:
        for key in ("cost_decimals", "quote_decimals", "pair_decimals"):
            value = pair.get(key)
            if isinstance(value, int) and not isinstance(value, bool):
                decimals = value
                break
    if decimals is None:
        raise ScheduleError("the quote precision (cost_decimals) is missing")
    volume_currency = pair.get("fee_volume_currency") or "USD"
    if not isinstance(volume_currency, str):
        raise ScheduleError("fee_volume_currency must be a string")
    return FeeSchedule(
        symbol=symbol,
        quote=normalise_currency(quote_code),
        quote_decimals=decimals,
        taker=taker,
        maker=maker,
        fee_volume_currency=normalise_currency(volume_currency),
        source=source,
    )


#: Kraken's legacy asset codes (X prefix for crypto, Z for fiat) and their plain names.
#: Only these: a general "strip a leading X/Z" rule would mangle newer 4-letter assets.
KRAKEN_LEGACY_CODES = {
    "ZUSD": "USD", "ZEUR": "EUR", "ZGBP": "GBP", "ZCAD": "CAD", "ZJPY": "JPY", "ZAUD": "AUD",
    "ZCHF": "CHF", "XXBT": "XBT", "XETH": "ETH", "XLTC": "LTC", "XXRP": "XRP", "XXLM": "XLM",
    "XXMR": "XMR", "XZEC": "ZEC", "XETC": "ETC", "XREP": "REP", "XXDG": "XDG", "XMLN": "MLN",
}


def normalise_currency(code: str) -> str:
    """Kraken asset codes to plain ones (``ZUSD`` -> ``USD``, ``XXBT`` -> ``XBT``); others upper-cased."""
    upper = code.strip().upper()
    return KRAKEN_LEGACY_CODES.get(upper, upper)


def tiers_as_pairs(tiers: Iterable[FeeTier]) -> list[list[str]]:
    """Tiers as Kraken-shaped ``[[volume, percent], ...]`` with plain strings."""
    return [tier.as_pair() for tier in tiers]
