"""Configuration values: strict JSON parsing, limits and exact serialisation.

Values are opaque JSON documents. They are parsed with numbers as ``int`` and
:class:`~decimal.Decimal` (never binary floats), so ``0.1`` or a 30-digit
quantity is stored and served exactly as sent. Everything PostgreSQL's
``jsonb`` would refuse (NaN/Infinity, NUL characters, unpaired surrogates,
numbers beyond ``numeric`` range) and everything beyond the configured limits
(serialised size, nesting depth) is rejected here, before any write, with a
:class:`ValueRejected` naming the reason.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal, InvalidOperation
from typing import Any

#: Deepest nesting of arrays/objects a value may have.
MAX_DEPTH = 32
#: Largest and smallest decimal exponent a number may have (PostgreSQL numeric copes with far more).
MAX_EXPONENT = 1000
#: Most significant digits a number may carry.
MAX_DIGITS = 1000


class ValueRejected(ValueError):
    """A request body or value that is not acceptable; the message says why."""


def _reject_constant(name: str) -> Any:
    raise ValueRejected(f"{name} is not a JSON number; send finite numbers only")


def _parse_decimal(text: str) -> Decimal:
    try:
        number = Decimal(text)
    except InvalidOperation as exc:  # pragma: no cover - json only hands us valid number tokens
        raise ValueRejected(f"invalid number {text[:40]!r}") from exc
    _check_decimal(number)
    return number


def _check_decimal(number: Decimal) -> None:
    if not number.is_finite():
        raise ValueRejected("numbers must be finite")
    if number and abs(number.adjusted()) > MAX_EXPONENT:
        raise ValueRejected(f"number exponent out of range (at most ±{MAX_EXPONENT})")
    if len(number.as_tuple().digits) > MAX_DIGITS:
        raise ValueRejected(f"number has too many digits (at most {MAX_DIGITS})")


def parse_json(raw: bytes) -> Any:
    """Parse a request body strictly: Decimal for fractions, no NaN/Infinity, valid UTF-8.

    Raises :class:`ValueRejected` with a readable message on any problem.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueRejected("request body is not valid UTF-8") from exc
    try:
        return json.loads(text, parse_float=_parse_decimal, parse_constant=_reject_constant)
    except ValueRejected:
        raise
    except RecursionError as exc:
        raise ValueRejected(f"value nested too deeply (at most {MAX_DEPTH} levels)") from exc
    except json.JSONDecodeError as exc:
        raise ValueRejected(f"request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from exc
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise ValueRejected(f"request body is not acceptable JSON: {exc}") from exc


def _check_string(text: str, where: str) -> None:
    if "\x00" in text:
        raise ValueRejected(f"{where} contains a NUL character, which cannot be stored")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueRejected(f"{where} contains an unpaired surrogate (invalid Unicode)") from exc


def check_value(value: Any, *, max_depth: int = MAX_DEPTH) -> None:
    """Check a parsed JSON value is storable: depth, strings, finite numbers, JSON types only."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise ValueRejected(f"value nested too deeply (at most {max_depth} levels)")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise ValueRejected("object keys must be strings")
                    _check_string(key, "an object key")
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _check_string(item, "a string")
        elif item is None or isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if item and len(str(abs(item))) > MAX_DIGITS:
                raise ValueRejected(f"integer too large (at most {MAX_DIGITS} digits)")
        elif isinstance(item, Decimal):
            _check_decimal(item)
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise ValueRejected("numbers must be finite")
        else:
            raise ValueRejected(f"{type(item).__name__} is not a JSON type")


def dumps(value: Any) -> str:
    """Serialise a checked JSON value exactly (Decimal as written, compact, UTF-8 text)."""
    parts: list[str] = []
    _dump(value, parts)
    return "".join(parts)


def _dump(value: Any, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, int):
        out.append(str(value))
    elif isinstance(value, Decimal):
        out.append(str(value))  # "0.10", "1E+5": valid JSON, exactly as sent
    elif isinstance(value, float):
        out.append(repr(value))
    elif isinstance(value, list):
        out.append("[")
        for i, child in enumerate(value):
            if i:
                out.append(",")
            _dump(child, out)
        out.append("]")
    elif isinstance(value, dict):
        out.append("{")
        for i, (key, child) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _dump(child, out)
        out.append("}")
    else:
        raise ValueRejected(f"{type(value).__name__} is not a JSON type")


def encoded_size(value_text: str) -> int:
    """Size in bytes of a serialised value (its UTF-8 encoding)."""
    return len(value_text.encode("utf-8"))


def json_str(text: str) -> str:
    """A JSON string literal (ASCII-safe) for composing response documents."""
    return json.dumps(text)
