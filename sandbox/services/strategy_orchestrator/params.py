"""Validation of a strategy's free-form JSON parameters: bounded size, depth, keys and values.

Parameters are opaque to the orchestrator (each strategy kind reads its own),
but they are stored in PostgreSQL ``jsonb`` and served on every read, so they
are bounded: a JSON object, at most :data:`MAX_PARAMS_BYTES` bytes as compact
UTF-8 JSON, nested at most :data:`MAX_PARAMS_DEPTH` levels, keys of at most
:data:`MAX_KEY_CHARS` characters, finite numbers, and text without NUL or
unencodable characters (which PostgreSQL or UTF-8 would refuse).
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_PARAMS_BYTES = 16_384
MAX_PARAMS_DEPTH = 8
MAX_KEY_CHARS = 128
#: Integers beyond 64 bits are refused: strategy code commonly reads them into fixed-width types.
MAX_INT = 2**63 - 1


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{where}: NUL characters are not allowed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{where}: text is not valid Unicode (lone surrogate)") from None


def _path(parent: str, key: str | int) -> str:
    return f"{parent}[{key}]" if isinstance(key, int) else f"{parent}.{key}"


def check_params(value: Any) -> dict[str, Any]:
    """Return ``value`` when it is acceptable strategy parameters, else raise ``ValueError`` naming the problem.

    Walks the document iteratively (no recursion, whatever the nesting).
    """
    if not isinstance(value, dict):
        raise ValueError("params must be a JSON object")
    stack: list[tuple[Any, str, int]] = [(value, "params", 1)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_PARAMS_DEPTH:
                raise ValueError(f"{where}: nested deeper than {MAX_PARAMS_DEPTH} levels")
            for key, child in node.items():
                if not isinstance(key, str):
                    raise ValueError(f"{where}: keys must be strings")
                if not key or len(key) > MAX_KEY_CHARS:
                    raise ValueError(f"{where}: keys must have 1 to {MAX_KEY_CHARS} characters")
                _check_text(key, where)
                stack.append((child, _path(where, key), depth + 1))
        elif isinstance(node, list):
            if depth > MAX_PARAMS_DEPTH:
                raise ValueError(f"{where}: nested deeper than {MAX_PARAMS_DEPTH} levels")
            stack.extend((child, _path(where, i), depth + 1) for i, child in enumerate(node))
        elif isinstance(node, str):
            _check_text(node, where)
        elif isinstance(node, bool) or node is None:
            pass
        elif isinstance(node, int):
            if not -MAX_INT - 1 <= node <= MAX_INT:
                raise ValueError(f"{where}: integers must fit in 64 bits")
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise ValueError(f"{where}: numbers must be finite (no NaN or Infinity)")
        else:
            raise ValueError(f"{where}: unsupported value of type {type(node).__name__}")
    size = len(encode_params(value))
    if size > MAX_PARAMS_BYTES:
        raise ValueError(f"params are {size} bytes as compact JSON; at most {MAX_PARAMS_BYTES} are allowed")
    return value


def encode_params(value: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON of validated parameters (what is stored and measured)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")
