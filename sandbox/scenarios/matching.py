"""Comparing what a scenario expected with what happened (pure functions, no I/O).

Numbers compare as decimals (``"0.50"`` equals ``0.5``), lists element by
element, ``reasons``-style fields as "every expected code is present", and
booleans against presence (``txid: true`` = the field is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

#: fields whose expected list must be contained in the actual one (order and extras do not matter)
SUBSET_FIELDS = frozenset({"reasons", "kinds"})
#: fields whose expected list must appear in the actual one in this order, other items allowed between
SUBSEQUENCE_FIELDS = frozenset({"includes", "passes_through"})
#: fields where ``true`` / ``false`` mean present / absent
PRESENCE_FIELDS = frozenset({"txid"})


@dataclass
class Mismatch:
    """One field that differs."""

    field: str
    expected: Any
    actual: Any

    def __str__(self) -> str:
        return f"{self.field}: expected {render(self.expected)}, got {render(self.actual)}"


def render(value: Any) -> str:
    """A value as a person reads it in a report."""
    if value is None:
        return "nothing"
    if isinstance(value, list):
        return "[" + ", ".join(render(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def as_decimal(value: Any) -> Decimal | None:
    """``value`` as a Decimal, or None when it is no number (booleans are not numbers)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        result = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return result if result.is_finite() else None


def same(expected: Any, actual: Any) -> bool:
    """Equal, numbers as decimals, lists element by element, mappings field by field."""
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            same(e, a) for e, a in zip(expected, actual, strict=True))
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(same(v, actual.get(k)) for k, v in expected.items())
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    e, a = as_decimal(expected), as_decimal(actual)
    if e is not None and a is not None and not isinstance(expected, bool):
        return e == a
    return expected == actual


def compare(expected: dict[str, Any], actual: dict[str, Any]) -> list[Mismatch]:
    """Every field of ``expected`` (None = not checked) that ``actual`` does not satisfy."""
    out = []
    for name, want in expected.items():
        if want is None:
            continue
        got = actual.get(name)
        if name in PRESENCE_FIELDS and isinstance(want, bool):
            if bool(got) != want:
                out.append(Mismatch(name, "set" if want else "unset", got))
        elif name in SUBSEQUENCE_FIELDS:
            got_list = list(got or [])
            if not subsequence(list(want), got_list):
                out.append(Mismatch(name, f"{render(list(want))} in this order", got_list))
        elif name in SUBSET_FIELDS:
            got_list = list(got or [])
            if any(w not in got_list for w in want):
                out.append(Mismatch(name, f"to include {render(list(want))}", got_list))
        elif isinstance(want, list) and not isinstance(got, list):
            if not any(same(w, got) for w in want):
                out.append(Mismatch(name, f"one of {render(list(want))}", got))
        elif not same(want, got):
            out.append(Mismatch(name, want, got))
    return out


def subsequence(wanted: list[Any], actual: list[Any]) -> bool:
    """True when ``wanted`` appears in ``actual`` in order (other items may sit between)."""
    items = iter(actual)
    return all(any(same(w, a) for a in items) for w in wanted)


def dotted(doc: Any, path: str) -> Any:
    """``doc["a"]["b"][0]`` for ``"a.b.0"`` (None when the path is not there)."""
    node = doc
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and part.lstrip("-").isdigit() and -len(node) <= int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def compare_paths(expected: dict[str, Any], doc: Any, prefix: str = "") -> list[Mismatch]:
    """``{dotted.path: value}`` against a JSON document."""
    return [Mismatch(prefix + path, want, dotted(doc, path)) for path, want in expected.items()
            if not same(want, dotted(doc, path))]


def normalise(value: Any) -> Any:
    """A value made comparable across runs: decimals in plain form, mappings sorted."""
    if isinstance(value, dict):
        return {k: normalise(value[k]) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [normalise(v) for v in value]
    number = as_decimal(value) if isinstance(value, str | int | float) else None
    if number is not None:
        text = format(number.normalize(), "f")
        return "0" if text in ("-0", "0") else text
    return value
