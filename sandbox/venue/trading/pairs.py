"""The tradable pairs as the trading side sees them: rules, fee tiers, names and number formats.

A :class:`PairSpec` is read from one entry of the venue's AssetPairs catalogue
(:class:`~sandbox.venue.public_rest.AssetPairsCatalog`): ``ordermin``,
``costmin``, ``tick_size``, the decimals, the taker (``fees``) and maker
(``fees_maker``) tiers and the pair ``status``.  :class:`PairRegistry` resolves
every name a client or the replay may use for a pair: the pair key
(``XXBTZUSD``), the altname (``XBTUSD``), the v1 wsname (``XBT/USD``) and the
WebSocket v2 symbol (``BTC/USD``, where Kraken writes BTC and DOGE for XBT and
XDG).  Asset helpers map Kraken's REST asset codes (``ZUSD``, ``XXBT``) to the
v2 names (``USD``, ``BTC``) used on the executions channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any

from sandbox.venue.trading.errors import UNKNOWN_PAIR, KrakenError

#: Kraken's v2 names for the legacy codes (v2 writes BTC/USD where v1 writes XBT/USD)
V2_ALIASES = {"XBT": "BTC", "XDG": "DOGE"}
_V1_ALIASES = {v: k for k, v in V2_ALIASES.items()}
#: Fiat codes shown with 4 decimals in Balance (Kraken's ``decimals`` for ZUSD, ZEUR, ...)
FIAT = frozenset({"USD", "EUR", "GBP", "CAD", "JPY", "CHF", "AUD"})
#: Pair states in which the matching engine trades (``cancel_only`` and ``post_only``: no trades occur)
TRADING_STATES = frozenset({"online", "limit_only", "reduce_only"})


def asset_name(code: str) -> str:
    """The v2 / display name of a REST asset code: ``ZUSD`` -> ``USD``, ``XXBT`` -> ``BTC``, ``SOL`` -> ``SOL``."""
    name = code[1:] if len(code) == 4 and code[0] in "XZ" else code
    return V2_ALIASES.get(name, name)


def asset_decimals(code: str) -> int:
    """Decimals Kraken shows for an asset's balance (4 for fiat, 10 for crypto)."""
    return 4 if asset_name(code) in FIAT else 10


def quantize(value: Decimal, decimals: int, rounding: str = ROUND_HALF_UP) -> Decimal:
    """``value`` with exactly ``decimals`` places."""
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=rounding)


def fmt(value: Decimal, decimals: int, rounding: str = ROUND_HALF_UP) -> str:
    """``value`` as Kraken writes it in REST responses: a string with ``decimals`` places."""
    return f"{quantize(value, decimals, rounding):f}"


def fmt_balance(value: Decimal, code: str) -> str:
    """A balance as Kraken's Balance writes it (truncated to the asset's decimals)."""
    return fmt(value, asset_decimals(code), ROUND_DOWN)


def places(value: Decimal) -> int:
    """Number of decimal places ``value`` is written with (``1.250`` -> 3, ``5`` -> 0)."""
    exponent = value.as_tuple().exponent
    return -exponent if isinstance(exponent, int) and exponent < 0 else 0


def _dec(value: Any, default: str = "0") -> Decimal:
    return Decimal(str(value if value is not None else default))


def _tiers(raw: Any) -> tuple[tuple[Decimal, Decimal], ...]:
    tiers = tuple((_dec(v), _dec(p)) for v, p in (raw or ()))
    return tiers or ((Decimal(0), Decimal(0)),)


@dataclass(frozen=True)
class PairSpec:
    """One pair's trading rules, as published in AssetPairs."""

    key: str
    altname: str
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int
    ordermin: Decimal
    costmin: Decimal
    tick_size: Decimal
    #: taker tiers: ``((30-day volume from which it applies, percent), ...)``
    fees: tuple[tuple[Decimal, Decimal], ...]
    #: maker tiers, same shape
    fees_maker: tuple[tuple[Decimal, Decimal], ...]
    fee_volume_currency: str = "ZUSD"

    @property
    def symbol(self) -> str:
        """The WebSocket v2 symbol (``BTC/USD``)."""
        base, _, quote = self.wsname.partition("/")
        return f"{V2_ALIASES.get(base, base)}/{V2_ALIASES.get(quote, quote)}"

    @classmethod
    def from_entry(cls, key: str, entry: Mapping[str, Any]) -> PairSpec:
        """Build from one AssetPairs ``result`` entry (numbers as parsed from the fixture)."""
        pair_decimals = int(entry.get("pair_decimals", 5))
        return cls(
            key=key,
            altname=str(entry.get("altname", key)),
            wsname=str(entry.get("wsname", key)),
            base=str(entry.get("base", "")),
            quote=str(entry.get("quote", "")),
            pair_decimals=pair_decimals,
            lot_decimals=int(entry.get("lot_decimals", 8)),
            cost_decimals=int(entry.get("cost_decimals", pair_decimals)),
            ordermin=_dec(entry.get("ordermin")),
            costmin=_dec(entry.get("costmin")),
            tick_size=_dec(entry.get("tick_size"), str(Decimal(1).scaleb(-pair_decimals))),
            fees=_tiers(entry.get("fees")),
            fees_maker=_tiers(entry.get("fees_maker") or entry.get("fees")),
            fee_volume_currency=str(entry.get("fee_volume_currency", "ZUSD")),
        )

    def fee_percent(self, volume_30d: Decimal, maker: bool) -> Decimal:
        """The fee in percent for an account with ``volume_30d`` (USD) of 30-day volume."""
        return tier_for(self.fees_maker if maker else self.fees, volume_30d)[2]


def tier_for(tiers: tuple[tuple[Decimal, Decimal], ...], volume: Decimal) -> tuple[int, Decimal, Decimal]:
    """``(index, threshold, percent)`` of the tier ``volume`` selects (thresholds are inclusive)."""
    chosen = 0
    for i, (threshold, _) in enumerate(tiers):
        if volume >= threshold:
            chosen = i
    return chosen, tiers[chosen][0], tiers[chosen][1]


class PairRegistry:
    """Every pair of the catalogue, found by any of its names; the live ``status`` read from the catalogue."""

    def __init__(self, entries: Mapping[str, Mapping[str, Any]], delisted: set[str] | None = None) -> None:
        self.entries = entries
        #: keys no longer listed (shared with the catalogue): :meth:`get` does not find them
        self.delisted = delisted if delisted is not None else set()
        self.specs: dict[str, PairSpec] = {key: PairSpec.from_entry(key, e) for key, e in entries.items()}
        self._names: dict[str, str] = {}
        for key, spec in self.specs.items():
            for name in (key, spec.altname, spec.wsname, spec.symbol, spec.symbol.replace("/", "")):
                self._names.setdefault(name.upper(), key)

    def __iter__(self) -> Any:
        return iter(self.specs.values())

    def find(self, name: str) -> PairSpec | None:
        """The pair called ``name`` (any of its names, case-insensitive), or ``None``."""
        name = name.strip().upper()
        key = self._names.get(name)
        if key is None and "/" in name:
            base, _, quote = name.partition("/")
            key = self._names.get(f"{_V1_ALIASES.get(base, base)}/{_V1_ALIASES.get(quote, quote)}")
        return self.specs.get(key) if key else None

    def get(self, name: str) -> PairSpec:
        """The pair called ``name`` as the private API sees it; raises ``EQuery:Unknown asset pair`` (delisted too)."""
        spec = self.find(name)
        if spec is None or spec.key in self.delisted:
            raise KrakenError(UNKNOWN_PAIR)
        return spec

    def status(self, key: str) -> str:
        """The pair's current ``status`` (``online``, ``cancel_only``, ``post_only``, ``limit_only``...)."""
        return str(self.entries[key].get("status", "online"))

    def assets(self) -> Iterable[str]:
        """Every asset code any pair trades."""
        return sorted({s.base for s in self.specs.values()} | {s.quote for s in self.specs.values()})

    def asset_code(self, name: str) -> str:
        """The REST code of an asset named any way (``usd``, ``ZUSD`` -> ``ZUSD``; ``BTC``, ``XBT`` -> ``XXBT``).

        Unknown assets keep their (upper-cased) name.
        """
        name = name.strip().upper()
        codes = {code: code for code in self.assets()}
        for code in list(codes):
            codes.setdefault(asset_name(code), code)
            short = code[1:] if len(code) == 4 and code[0] in "XZ" else code
            codes.setdefault(short, code)
        return codes.get(name, name)
