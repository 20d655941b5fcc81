"""Decimal rendering: plain strings (``"0.26"``, never ``"2.6E-1"``), no trailing zeros."""

from __future__ import annotations

from decimal import Decimal


def plain(value: Decimal) -> str:
    """``value`` as a plain decimal string without exponent or trailing zeros (``-0`` as ``0``)."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("-0", ""):
        return "0"
    return text


def plain_or_none(value: Decimal | None) -> str | None:
    """:func:`plain`, passing None through."""
    return None if value is None else plain(value)
