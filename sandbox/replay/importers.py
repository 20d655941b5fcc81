"""Captures made elsewhere, turned into the fixture format.

Accepted inputs (gzip or plain; ``detect_format`` tells them apart):

``fixture``
    this project's own format (with or without the header line).
``ndjson``
    one raw frame per line, exactly as received (flashbook's capture).  Each
    line's text is kept byte for byte.
``json-array``
    a JSON array whose elements are frames.
``pykrakensdk``
    a JSON object ``{"init": [frames...], "updates": [frames...]}`` (also
    ``"frames"`` or ``"messages"`` instead of ``"updates"``), as in
    python-kraken-sdk's test data.
``cryptofeed``
    cryptofeed's raw-data capture (``raw_data_collection=AsyncFileCallback(...)``):
    text lines ``<epoch>: <frame>`` (received), ``<url> <- <epoch>: <frame>``
    (sent), ``<url> <-> <epoch>`` (connection opened), ``<url> -> <epoch>: ...``
    (HTTP, skipped) and a leading ``configuration: ...`` line (skipped).

Frames parsed from JSON documents (array, pykrakensdk) are written back as
compact JSON with every number token unchanged (``dumps_exact``); only their
whitespace can differ from the wire.  Inputs without receive times are paced by
the frames' own exchange timestamps (v2 ``timestamp`` / ``time_in``, v1 level
and trade times); frames without one (heartbeats, status) are interpolated
between their neighbours, and times never go backwards.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox.replay.fixture import FixtureError, Manifest, Record, Session, iter_lines, open_text, problem, write_session
from sandbox.replay.protocol import dumps_exact, exchange_time

FORMATS = ("fixture", "ndjson", "json-array", "pykrakensdk", "cryptofeed")
#: spacing used when no frame of a capture carries a timestamp at all
DEFAULT_INTERVAL = 0.001

_CRYPTOFEED_RECV = re.compile(r"^(\d+(?:\.\d+)?): (.*)$")
_CRYPTOFEED_SEND = re.compile(r"^(\S+) <- (\d+(?:\.\d+)?): (.*)$")
_CRYPTOFEED_CONNECT = re.compile(r"^(\S+) <-> (\d+(?:\.\d+)?)\s*$")
_CRYPTOFEED_HTTP = re.compile(r"^(\S+) -> (\d+(?:\.\d+)?): ")


def detect_format(path: str | Path) -> str:
    """Guess the format of ``path`` from its first line (see the module docstring)."""
    first = ""
    for _, text in iter_lines(path):
        if text.strip():
            first = text.strip()
            break
    if not first:
        raise FixtureError(f"{path} is empty", problems=[problem(path, 1, "no frames")])
    if first.startswith("configuration:") or _CRYPTOFEED_RECV.match(first) or _CRYPTOFEED_CONNECT.match(first):
        return "cryptofeed"
    if _CRYPTOFEED_SEND.match(first) or _CRYPTOFEED_HTTP.match(first):
        return "cryptofeed"
    if first.startswith("["):
        try:
            doc = json.loads(first)
        except json.JSONDecodeError:
            return "json-array"  # a multi-line (pretty-printed) array
        return "json-array" if doc and all(isinstance(e, list | dict) for e in doc) and not isinstance(doc[0], int) else "ndjson"
    try:
        doc = json.loads(first)
    except json.JSONDecodeError:
        return "pykrakensdk" if first.startswith("{") else "ndjson"
    if isinstance(doc, dict) and ("aether_replay" in doc or {"t", "frame"} <= doc.keys()):
        return "fixture"
    if isinstance(doc, dict) and "init" in doc:
        return "pykrakensdk"
    return "ndjson"


def load_records(path: str | Path, fmt: str = "auto", *, interval: float = DEFAULT_INTERVAL) -> list[Record]:
    """Every record of the capture at ``path`` in fixture form, receive times assigned where missing."""
    path = Path(path)
    fmt = detect_format(path) if fmt == "auto" else fmt
    if fmt == "fixture":
        return list(Session(path).records())
    if fmt == "cryptofeed":
        return list(_cryptofeed(path))
    if fmt == "ndjson":
        frames = [(lineno, text) for lineno, text in iter_lines(path) if text.strip()]
    elif fmt in ("json-array", "pykrakensdk"):
        frames = list(_document_frames(path, fmt))
    else:
        raise FixtureError(f"unknown capture format {fmt!r}", hint=f"use one of: auto, {', '.join(FORMATS)}")
    return pace(path, frames, interval=interval)


def import_capture(
    src: str | Path, dest: str | Path, fmt: str = "auto", *, interval: float = DEFAULT_INTERVAL, notes: str = ""
) -> Manifest:
    """Convert ``src`` into the fixture ``dest`` after validating it; returns the manifest written.

    Invalid input raises :class:`FixtureError` with ``file:line`` problems and
    writes nothing.
    """
    from sandbox.replay.validate import validate_records

    src = Path(src)
    fmt = detect_format(src) if fmt == "auto" else fmt
    records = load_records(src, fmt, interval=interval)
    report = validate_records(records, src)
    if report.problems:
        raise FixtureError(
            f"{src} is not a valid Kraken capture ({len(report.problems)} problem(s))", problems=report.problems[:50]
        )
    return write_session(dest, records, source=f"import {fmt} {src.name}", notes=notes)


# -- pacing --------------------------------------------------------------------------


def pace(path: str | Path, frames: list[tuple[int, str]], *, interval: float = DEFAULT_INTERVAL) -> list[Record]:
    """Records for ``(line, raw_text)`` frames, timed by their exchange timestamps (interpolated)."""
    times: list[float | None] = []
    for lineno, text in frames:
        try:
            msg = json.loads(text, parse_float=Decimal)
        except json.JSONDecodeError as exc:
            raise FixtureError(
                f"{path} has a frame that is not JSON", problems=[problem(path, lineno, f"frame is not JSON ({exc.msg})")]
            ) from None
        times.append(exchange_time(msg))
    filled = _interpolate(times, interval)
    return [Record(round(t, 6), "recv", text, lineno) for (lineno, text), t in zip(frames, filled, strict=True)]


def _interpolate(times: list[float | None], interval: float) -> list[float]:
    known = [(i, t) for i, t in enumerate(times) if t is not None]
    if not known:
        return [i * interval for i in range(len(times))]
    out: list[float] = [0.0] * len(times)
    running = known[0][1]
    clamped: list[tuple[int, float]] = []
    for i, t in known:  # exchange times of different channels interleave: never go backwards
        running = max(running, t)
        clamped.append((i, running))
    first_i, first_t = clamped[0]
    for i in range(first_i + 1):
        out[i] = first_t
    for (i0, t0), (i1, t1) in zip(clamped, clamped[1:], strict=False):
        for i in range(i0, i1 + 1):
            out[i] = t0 + (t1 - t0) * (i - i0) / (i1 - i0)
    last_i, last_t = clamped[-1]
    for i in range(last_i, len(times)):
        out[i] = last_t
    return out


# -- JSON documents --------------------------------------------------------------------


def _document_frames(path: Path, fmt: str) -> Iterator[tuple[int, str]]:
    """``(line, compact_text)`` of every frame in a JSON array or pykrakensdk object."""
    with open_text(path) as fh:
        try:
            text = fh.read()
        except EOFError as exc:
            raise FixtureError(f"{path} is truncated", problems=[problem(path, 1, f"truncated gzip stream ({exc})")]) from exc
    scanner = _Scanner(path, text)
    if fmt == "json-array":
        yield from scanner.array(scanner.skip(0))
        return
    pos = scanner.expect(scanner.skip(0), "{")
    keys: set[str] = set()
    while True:
        pos = scanner.skip(pos)
        if text.startswith("}", pos):
            break
        key, pos = scanner.value(pos)
        pos = scanner.expect(scanner.skip(pos), ":")
        pos = scanner.skip(pos)
        if key in ("init", "updates", "frames", "messages") and text.startswith("[", pos):
            keys.add(key)
            frames = scanner.array(pos)
            yield from frames
            pos = frames.end  # type: ignore[attr-defined]
        else:
            _, pos = scanner.value(pos)
        pos = scanner.skip(pos)
        if text.startswith(",", pos):
            pos += 1
    if "init" not in keys or not keys & {"updates", "frames", "messages"}:
        raise FixtureError(
            f"{path} is not a pykrakensdk capture",
            problems=[problem(path, 1, 'expected an object with "init" and "updates" (or "frames") arrays')],
        )


class _FrameList:
    """An iterator over an array's elements that remembers where the array ended."""

    def __init__(self, scanner: _Scanner, pos: int) -> None:
        self.scanner, self.pos, self.end = scanner, pos, pos

    def __iter__(self) -> Iterator[tuple[int, str]]:
        sc, text = self.scanner, self.scanner.text
        pos = sc.expect(sc.skip(self.pos), "[")
        while True:
            pos = sc.skip(pos)
            if text.startswith("]", pos):
                self.end = pos + 1
                return
            start = pos
            value, pos = sc.value(pos)
            raw = text[start:pos]
            yield sc.line_of(start), raw if "\n" not in raw and " " not in raw else dumps_exact(value)
            pos = sc.skip(pos)
            if text.startswith(",", pos):
                pos += 1
            elif not text.startswith("]", pos):
                sc.fail(pos, "expected ',' or ']' between frames")


class _Scanner:
    """Walks a JSON document keeping positions, so errors and frames carry line numbers."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.text = path, text
        self.decoder = json.JSONDecoder(parse_float=Decimal)

    def skip(self, pos: int) -> int:
        while pos < len(self.text) and self.text[pos] in " \t\r\n":
            pos += 1
        return pos

    def line_of(self, pos: int) -> int:
        return self.text.count("\n", 0, pos) + 1

    def fail(self, pos: int, message: str) -> None:
        raise FixtureError(f"{self.path} is not valid JSON", problems=[problem(self.path, self.line_of(pos), message)])

    def expect(self, pos: int, char: str) -> int:
        if not self.text.startswith(char, pos):
            self.fail(pos, f"expected {char!r}" + (" (file ends early)" if pos >= len(self.text) else ""))
        return pos + 1

    def value(self, pos: int) -> tuple[Any, int]:
        try:
            return self.decoder.raw_decode(self.text, pos)
        except json.JSONDecodeError as exc:
            self.fail(exc.pos, f"not JSON ({exc.msg})")
            raise  # unreachable

    def array(self, pos: int) -> _FrameList:
        return _FrameList(self, pos)


# -- cryptofeed --------------------------------------------------------------------------


def _cryptofeed(path: Path) -> Iterator[Record]:
    connections = 0
    for lineno, text in iter_lines(path):
        if not text.strip() or text.startswith("configuration:") or _CRYPTOFEED_HTTP.match(text):
            continue
        if m := _CRYPTOFEED_CONNECT.match(text):
            connections += 1
            if connections > 1:
                raise FixtureError(
                    f"{path} holds more than one connection",
                    problems=[problem(path, lineno, "a second connection opens here; split the file per connection")],
                )
            continue
        if m := _CRYPTOFEED_SEND.match(text):
            yield Record(float(m.group(2)), "send", m.group(3), lineno)
        elif m := _CRYPTOFEED_RECV.match(text):
            yield Record(float(m.group(1)), "recv", m.group(2), lineno)
        else:
            raise FixtureError(
                f"{path} is not a cryptofeed raw capture",
                problems=[problem(path, lineno, "expected '<epoch>: <frame>' or '<url> <- <epoch>: <frame>'")],
            )

