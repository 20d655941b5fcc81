"""Instrument symbols and asset codes: parsing and the canonical spelling used for matching.

Kraken spells some assets two ways (``XBT``/``BTC``, ``XDG``/``DOGE``) and its
REST API prefixes legacy codes with ``X``/``Z`` (``XXBT``, ``ZUSD``). The
restricted list and ESG exclusions match on the canonical form, so restricting
``BTC`` also restricts ``XBT/USD``.
"""

from __future__ import annotations

from functools import lru_cache

#: Alternative spellings -> canonical asset code.
ALIASES: dict[str, str] = {
    "XBT": "BTC",
    "XXBT": "BTC",
    "XDG": "DOGE",
    "XXDG": "DOGE",
    "XETH": "ETH",
    "XLTC": "LTC",
    "XXRP": "XRP",
    "XXLM": "XLM",
    "XETC": "ETC",
    "XZEC": "ZEC",
    "XXMR": "XMR",
    "XMLN": "MLN",
    "XREP": "REP",
    "ZUSD": "USD",
    "ZEUR": "EUR",
    "ZGBP": "GBP",
    "ZCAD": "CAD",
    "ZJPY": "JPY",
    "ZAUD": "AUD",
    "ZCHF": "CHF",
}


@lru_cache(maxsize=4096)
def canonical_asset(code: str) -> str:
    """The canonical spelling of an asset code (upper-case, aliases resolved)."""
    upper = code.upper()
    return ALIASES.get(upper, upper)


def split_symbol(symbol: str) -> tuple[str, str | None]:
    """``(base, quote)`` of ``BASE/QUOTE``; ``(symbol, None)`` when there is no slash."""
    base, sep, quote = symbol.partition("/")
    return (base, quote) if sep else (symbol, None)


@lru_cache(maxsize=8192)
def canonical_symbol(symbol: str) -> str:
    """``BASE/QUOTE`` with both assets canonical (``XBT/USD`` -> ``BTC/USD``); upper-cased otherwise."""
    base, quote = split_symbol(symbol.upper())
    if quote is None:
        return base
    return f"{canonical_asset(base)}/{canonical_asset(quote)}"


@lru_cache(maxsize=8192)
def base_asset(symbol: str) -> str:
    """The canonical base asset of a symbol (the whole symbol when it has no slash)."""
    return canonical_asset(split_symbol(symbol.upper())[0])


@lru_cache(maxsize=8192)
def quote_asset(symbol: str) -> str | None:
    """The canonical quote asset of a symbol, None without a slash."""
    quote = split_symbol(symbol.upper())[1]
    return canonical_asset(quote) if quote else None
