"""Exact decimal helpers: decimal places, multiples of a tick, products (no float, no rounding)."""

from __future__ import annotations

from decimal import Context, Decimal

#: Large enough that no product of two bounded inputs (<= 1e15, <= 30 decimals) is ever rounded.
EXACT = Context(prec=200)


def places(value: Decimal) -> int:
    """Significant decimal places of ``value``: ``100.10`` -> 1, ``1E+2`` -> 0, ``0.00050`` -> 4.

    Computed from the digit tuple, so no context precision can round it.
    """
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or exponent >= 0:
        return 0
    trailing = 0
    for digit in reversed(digits):
        if digit != 0 or trailing >= -exponent:
            break
        trailing += 1
    return max(0, -exponent - trailing)


def _scaled(value: Decimal) -> tuple[int, int]:
    """``value`` as ``(integer, exponent)`` with ``value == integer * 10**exponent``."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int), "finite decimals only"
    number = int("".join(map(str, digits)) or "0")
    return (-number if sign else number), exponent


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether ``value`` is an exact integer multiple of ``step`` (``step`` > 0), with Python integers."""
    a, ea = _scaled(value)
    b, eb = _scaled(step)
    if b == 0:
        return True
    common = min(ea, eb)
    return (a * 10 ** (ea - common)) % (b * 10 ** (eb - common)) == 0


def multiply(a: Decimal, b: Decimal) -> Decimal:
    """``a * b`` exactly (bounded inputs never reach the 200-digit context)."""
    return EXACT.multiply(a, b)


def plain(value: Decimal) -> str:
    """Positional notation without exponent (``"0.0000001"``); trailing zeros as given."""
    return format(value, "f")


def tidy(value: Decimal) -> str:
    """Positional notation without trailing zeros (``"50.10"`` -> ``"50.1"``, ``"1E+2"`` -> ``"100"``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"
