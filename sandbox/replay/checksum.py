"""Kraken's order-book checksum (WebSocket v1 and v2), computed from raw number tokens.

Kraken's algorithm is the same in both API versions: take the top 10 ask levels
(best first), then the top 10 bid levels (best first); for every level write its
price and then its quantity with the decimal point removed and leading zeros
stripped; concatenate everything and take the CRC32 as an unsigned 32-bit
integer.  See docs.kraken.com, guides ``spot-ws-book-v1`` and ``spot-ws-book-v2``.

The digits must be those of the token Kraken sent: ``0.00005100`` contributes
``5100``, while a float round trip would give ``5.1e-05`` and a wrong checksum.
v1 sends numbers as JSON strings, v2 as JSON numbers with the pair's precision
(``63499.0``, ``0.00005100``); parse v2 with ``parse_float=Decimal`` (or keep the
text) and every token survives.  Only where a source lost trailing zeros (the
examples on Kraken's v2 ``book`` channel page) re-format to the pair's decimals
with ``price_decimals`` / ``qty_decimals``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from decimal import Decimal
from typing import Union

#: Levels per side that enter the checksum, whatever the subscribed depth.
CHECKSUM_LEVELS = 10

Number = Union[str, Decimal, int]


def token_text(value: Number) -> str:
    """The plain decimal text of a number token: strings as sent, Decimals in fixed point.

    ``Decimal("0.00000050")`` prints as ``5.0E-7`` with ``str``; ``format(d, "f")``
    keeps the token's digits and exponent (``0.00000050``).  Floats are refused:
    they have already lost the token's trailing zeros.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bool) or isinstance(value, float):
        raise TypeError(
            f"{value!r} is a {type(value).__name__}: parse Kraken frames with parse_float=Decimal, "
            "a float loses the token's trailing zeros and breaks the checksum"
        )
    if isinstance(value, int):
        return str(value)
    raise TypeError(f"not a number token: {value!r}")


def fragment(value: Number, decimals: int | None = None) -> str:
    """One number's contribution to the checksum input: its digits, no point, no leading zeros.

    ``decimals`` re-formats the value to that many decimal places first (for
    sources that dropped trailing zeros); ``None`` uses the token as sent.
    """
    if decimals is None:
        text = token_text(value)
    else:
        text = format(Decimal(token_text(value)), f".{decimals}f")
    return text.replace(".", "").lstrip("0")


def checksum_input(
    asks: Iterable[tuple[Number, Number]],
    bids: Iterable[tuple[Number, Number]],
    *,
    price_decimals: int | None = None,
    qty_decimals: int | None = None,
    levels: int = CHECKSUM_LEVELS,
) -> str:
    """The string Kraken feeds to CRC32: ``levels`` asks then ``levels`` bids, each best first."""
    parts: list[str] = []
    for side in (asks, bids):
        for i, (price, qty) in enumerate(side):
            if i >= levels:
                break
            parts.append(fragment(price, price_decimals))
            parts.append(fragment(qty, qty_decimals))
    return "".join(parts)


def book_checksum(
    asks: Iterable[tuple[Number, Number]],
    bids: Iterable[tuple[Number, Number]],
    *,
    price_decimals: int | None = None,
    qty_decimals: int | None = None,
    levels: int = CHECKSUM_LEVELS,
) -> int:
    """Kraken's CRC32 book checksum (unsigned) of ``asks`` and ``bids`` given best first.

    Each level is ``(price, qty)`` as raw tokens (v1 strings, v2 Decimals); only
    the first ``levels`` of each side count.
    """
    text = checksum_input(asks, bids, price_decimals=price_decimals, qty_decimals=qty_decimals, levels=levels)
    return crc32_text(text)


def crc32_text(text: str) -> int:
    """CRC32 of an ASCII checksum input, as the unsigned integer Kraken sends."""
    return zlib.crc32(text.encode("ascii")) & 0xFFFFFFFF
