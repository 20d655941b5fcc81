"""The replay fixture format: one recorded Kraken WebSocket session per file.

A session file is NDJSON, optionally gzip-compressed (``.ndjson.gz``)::

    {"aether_replay": 1, "manifest": {...}}                       <- line 1: header
    {"t": 1751929203.501553, "dir": "recv", "frame": "{\\"channel\\":..."}
    {"t": 1751929203.512210, "dir": "send", "frame": "{\\"method\\":\\"subscribe\\",...}"}

Every following line is one frame: ``t`` the local receive (or send) time in
epoch seconds, ``dir`` ``recv`` (venue to client) or ``send`` (client to venue),
and ``frame`` the raw text exactly as it crossed the wire, so number tokens such
as ``0.00005100`` survive.  The header's manifest (:class:`Manifest`) describes
the session: API version, channels, symbols, book depth, counts per channel and
symbol, time span, source and generator seed.  A file without a header (a
recording spool, say) is still readable; its manifest is derived on the fly.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tempfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import BaseModel, ConfigDict, Field

from sandbox.errors import InvalidInput
from sandbox.replay.book import parse_frame
from sandbox.replay.protocol import UnknownFrame, classify

FORMAT_VERSION = 1
HEADER_KEY = "aether_replay"
DIRECTIONS = ("recv", "send")


class Manifest(BaseModel):
    """What a session holds; the first line of every fixture file."""

    model_config = ConfigDict(extra="allow")

    #: ``"v1"`` (wss://ws.kraken.com) or ``"v2"`` (wss://ws.kraken.com/v2)
    api: str
    #: market-data channels seen (``book``, ``trade``, ``ticker``, ``ohlc``, ``spread``...)
    channels: list[str] = Field(default_factory=list)
    #: every symbol (v2 ``BTC/USD``) or pair (v1 ``XBT/USD``) with data
    symbols: list[str] = Field(default_factory=list)
    #: subscribed book depth per symbol
    depths: dict[str, int] = Field(default_factory=dict)
    #: ``(price_decimals, qty_decimals)`` per symbol where known
    precisions: dict[str, tuple[int, int]] = Field(default_factory=dict)
    #: frame lines in the file (both directions)
    frames: int = 0
    #: frames by direction
    directions: dict[str, int] = Field(default_factory=dict)
    #: received frames per kind (data channel, or method / event name)
    channel_counts: dict[str, int] = Field(default_factory=dict)
    #: received data frames per channel and symbol
    symbol_counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    #: receive time of the first and last frame (epoch seconds)
    start: float | None = None
    end: float | None = None
    duration_s: float = 0.0
    #: where the session came from: ``generator``, ``record wss://...``, ``import <format> <file>``
    source: str = ""
    #: the generator's seed and parameters, for sessions it made
    generator: dict[str, Any] | None = None
    notes: str = ""

    @property
    def book_depth(self) -> int | None:
        """The largest subscribed book depth, or ``None`` without books."""
        return max(self.depths.values()) if self.depths else None


@dataclass(frozen=True, slots=True)
class Record:
    """One frame of a session."""

    t: float
    dir: str
    frame: str
    #: 1-based line in the file it was read from (0 when not read from a file)
    line: int = 0


class FixtureError(InvalidInput):
    """A fixture file that cannot be read; ``problems`` hold ``file:line: message`` lines."""


def problem(path: str | Path, line: int, message: str) -> str:
    """One problem line: ``file:line: message``."""
    return f"{path}:{line}: {message}"


# -- reading ---------------------------------------------------------------------------


def open_text(path: str | Path) -> IO[str]:
    """Open ``path`` for text reading, through gzip when it starts with gzip's magic bytes."""
    path = Path(path)
    try:
        with path.open("rb") as raw:
            magic = raw.read(2)
    except OSError as exc:
        raise FixtureError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="\n")
    return path.open("r", encoding="utf-8", newline="\n")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` for every line, naming the line where gzip or UTF-8 decoding fails."""
    lineno = 0
    with open_text(path) as fh:
        while True:
            try:
                text = fh.readline()
            except EOFError as exc:
                raise FixtureError(
                    f"{path} is truncated", problems=[problem(path, lineno + 1, f"truncated gzip stream ({exc})")]
                ) from exc
            except (OSError, zlib.error) as exc:
                raise FixtureError(
                    f"{path} is corrupt", problems=[problem(path, lineno + 1, f"corrupt gzip stream ({exc})")]
                ) from exc
            except UnicodeDecodeError as exc:
                raise FixtureError(
                    f"{path} is not UTF-8 text", problems=[problem(path, lineno + 1, f"not UTF-8 ({exc.reason})")]
                ) from exc
            if not text:
                return
            lineno += 1
            yield lineno, text.rstrip("\n").rstrip("\r")


def parse_header(text: str) -> Manifest | None:
    """The manifest of a header line, or ``None`` when ``text`` is a frame line."""
    if HEADER_KEY not in text[:64]:
        return None
    doc = json.loads(text)
    if not isinstance(doc, dict) or HEADER_KEY not in doc:
        return None
    if doc[HEADER_KEY] != FORMAT_VERSION:
        raise ValueError(f"fixture format version {doc[HEADER_KEY]!r} is not supported (expected {FORMAT_VERSION})")
    return Manifest.model_validate(doc.get("manifest") or {})


def parse_record(text: str, line: int) -> Record:
    """One frame line as a :class:`Record`; raises ``ValueError`` with a plain reason."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line is not JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise ValueError("line is not a JSON object with t, dir and frame")
    t, direction, frame = doc.get("t"), doc.get("dir", "recv"), doc.get("frame")
    if isinstance(t, bool) or not isinstance(t, int | float):
        raise ValueError(f"'t' must be epoch seconds, got {t!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"'dir' must be 'recv' or 'send', got {direction!r}")
    if not isinstance(frame, str):
        raise ValueError("'frame' must be the frame's raw text as a JSON string")
    return Record(float(t), direction, frame, line)


class Session:
    """A fixture file: its manifest (read eagerly) and its records (streamed)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._header: Manifest | None = None
        for lineno, text in iter_lines(self.path):
            try:
                self._header = parse_header(text)
            except ValueError as exc:
                raise FixtureError(f"{self.path} has a bad header", problems=[problem(self.path, lineno, str(exc))]) from exc
            break
        self._manifest = self._header

    @property
    def has_header(self) -> bool:
        """True when the file starts with a manifest header line."""
        return self._header is not None

    @property
    def manifest(self) -> Manifest:
        """The header's manifest, or one derived by reading the whole file when there is none."""
        if self._manifest is None:
            self._manifest = build_manifest(self.records(), source=f"file {self.path.name}")
        return self._manifest

    def records(self) -> Iterator[Record]:
        """Every frame record, in file order; a bad line raises :class:`FixtureError` naming it."""
        for lineno, text in iter_lines(self.path):
            if lineno == 1 and self._header is not None:
                continue
            if not text.strip():
                continue
            try:
                yield parse_record(text, lineno)
            except ValueError as exc:
                raise FixtureError(f"{self.path} has a bad line", problems=[problem(self.path, lineno, str(exc))]) from exc


def read_session(path: str | Path) -> Session:
    """Open a fixture file (header read now, records on demand)."""
    return Session(path)


# -- manifest --------------------------------------------------------------------------


class ManifestBuilder:
    """Accumulates a :class:`Manifest` frame by frame (used while writing)."""

    def __init__(self) -> None:
        self.api: str | None = None
        self.frames = 0
        self.directions: Counter[str] = Counter()
        self.kinds: Counter[str] = Counter()
        self.by_symbol: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.depths: dict[str, int] = {}
        self.start: float | None = None
        self.end: float | None = None

    def add(self, record: Record, msg: Any = None, info: Any = None) -> None:
        """Count one record (``msg``/``info``: its frame already parsed and classified, if at hand).

        Frames that do not parse are counted as ``unparsed``.
        """
        self.frames += 1
        self.directions[record.dir] += 1
        self.start = record.t if self.start is None else min(self.start, record.t)
        self.end = record.t if self.end is None else max(self.end, record.t)
        if record.dir != "recv":
            return
        if info is None:
            try:
                msg = parse_frame(record.frame)
                info = classify(msg)
            except (ValueError, UnknownFrame):
                self.kinds["unparsed"] += 1
                return
        self.api = self.api or info.api
        self.kinds[info.kind] += 1
        if info.is_data:
            for symbol in info.symbols:
                self.by_symbol[info.kind][symbol] += 1
        self._note_depth(msg, info)

    def _note_depth(self, msg: Any, info: Any) -> None:
        if info.api == "v2" and info.kind == "subscribe" and isinstance(msg.get("result"), dict):
            result = msg["result"]
            if result.get("channel") == "book" and "symbol" in result:
                self.depths[result["symbol"]] = int(result.get("depth", 10))
        elif info.api == "v1" and info.kind == "book" and info.channel_name:
            depth = info.channel_name.partition("-")[2]
            if depth.isdigit():
                self.depths[info.symbols[0]] = int(depth)
        elif info.api == "v2" and info.kind == "book" and info.msg_type == "snapshot":
            for item in msg.get("data") or ():
                # without an acknowledgement, a snapshot's size is the best guess at its depth
                size = max(len(item.get("bids") or ()), len(item.get("asks") or ()))
                self.depths.setdefault(item["symbol"], next((d for d in (10, 25, 100, 500, 1000) if d >= size), size))

    def build(self, **fields: Any) -> Manifest:
        """The manifest of everything added, plus ``fields`` (source, generator, notes...)."""
        channels = sorted(self.by_symbol)
        symbols = sorted({s for counts in self.by_symbol.values() for s in counts})
        start, end = self.start, self.end
        return Manifest(
            api=fields.pop("api", None) or self.api or "v2",
            channels=channels,
            symbols=symbols,
            depths=dict(sorted(self.depths.items())),
            frames=self.frames,
            directions=dict(sorted(self.directions.items())),
            channel_counts=dict(sorted(self.kinds.items())),
            symbol_counts={c: dict(sorted(self.by_symbol[c].items())) for c in channels},
            start=start,
            end=end,
            duration_s=round((end - start), 6) if start is not None and end is not None else 0.0,
            **fields,
        )


def build_manifest(records: Iterable[Record], **fields: Any) -> Manifest:
    """A manifest for ``records`` (reads them all)."""
    builder = ManifestBuilder()
    for record in records:
        builder.add(record)
    return builder.build(**fields)


# -- writing ---------------------------------------------------------------------------


def record_line(record: Record) -> str:
    """One frame line; ``t`` with microsecond precision."""
    return json.dumps({"t": round(record.t, 6), "dir": record.dir, "frame": record.frame}, ensure_ascii=False)


def header_line(manifest: Manifest) -> str:
    """The header line for ``manifest``."""
    return json.dumps({HEADER_KEY: FORMAT_VERSION, "manifest": manifest.model_dump(mode="json")}, ensure_ascii=False)


def write_session(
    path: str | Path,
    records: Iterable[Record],
    **manifest_fields: Any,
) -> Manifest:
    """Write ``records`` to ``path`` with a header; gzip when the name ends ``.gz``.

    Records stream through a temporary spool so the header (which needs the
    counts) can come first without holding the session in memory.  The gzip
    header carries no timestamp, so the same records give the same bytes.
    The file is replaced atomically.
    """
    path = Path(path)
    builder = ManifestBuilder()
    with tempfile.TemporaryFile("w+", encoding="utf-8") as spool:
        for record in records:
            builder.add(record)
            spool.write(record_line(record))
            spool.write("\n")
        manifest = builder.build(**manifest_fields)
        spool.seek(0)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as raw:
                if path.name.endswith(".gz"):
                    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz:
                        _copy(manifest, spool, gz)
                else:
                    _copy(manifest, spool, raw)
            os.chmod(tmp_name, 0o644)  # mkstemp makes it 0600; a fixture is meant to be shared
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    return manifest


def _copy(manifest: Manifest, spool: IO[str], out: IO[bytes]) -> None:
    out.write(header_line(manifest).encode("utf-8") + b"\n")
    while chunk := spool.read(1 << 20):
        out.write(chunk.encode("utf-8"))
