"""A session as the venue replays it: market frames, market state, pacing and rebasing.

:class:`ReplaySession` keeps the market-data frames of a fixture (book, trade,
ticker, ohlc, spread), parsed once with exact Decimals; connection frames
(status, acknowledgements, heartbeats, pongs) are left out because the venue
writes its own for each client.  :class:`MarketState` follows the market as the
frames play: books at the recorded depth (checksums verified as they are
applied), the latest ticker, recent trades and the running candles, which is
what a late subscriber's snapshot is made of.  :class:`Rebaser` shifts a frame's
exchange timestamps (and v2 trade ids) when a looped session is replayed with
times rebased to now.
"""

from __future__ import annotations

import calendar
import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.replay.book import BookCheck, OrderBook, V1Books, V2Books, parse_frame
from sandbox.replay.fixture import FixtureError, Manifest, read_session
from sandbox.replay.protocol import FrameInfo, classify, exchange_time

#: trades kept per symbol for a v2 ``trade`` snapshot (Kraken sends the last 50)
TRADE_SNAPSHOT = 50
#: book frames a lazy :class:`MarketState` queues at most (8 bytes each) before applying them anyway
LAZY_BACKLOG = 1_000_000


@dataclass(slots=True)
class MarketFrame:
    """One market-data frame of the session."""

    #: receive time in the recording (epoch seconds)
    t: float
    text: str
    msg: Any
    info: FrameInfo
    line: int
    #: the frame's own exchange time, when it carries one
    exchange_t: float | None


@dataclass
class ReplaySession:
    """The replayable part of a fixture."""

    path: Path
    manifest: Manifest
    api: str
    frames: list[MarketFrame]
    #: symbols with data per channel (``{"book": {"BTC/USD", ...}, ...}``)
    channels: dict[str, set[str]]
    #: recorded book depth per symbol
    depths: dict[str, int]
    #: v2 ohlc intervals (minutes) per symbol; v1 ``ohlc-<n>`` the same way
    intervals: dict[str, set[int]]
    trade_ids: tuple[int, int] | None = None

    @property
    def symbols(self) -> set[str]:
        """Every symbol with market data."""
        return set().union(*self.channels.values()) if self.channels else set()

    @property
    def start(self) -> float:
        return self.frames[0].t if self.frames else 0.0

    @property
    def end(self) -> float:
        return self.frames[-1].t if self.frames else 0.0

    @property
    def first_exchange_t(self) -> float:
        """The earliest exchange timestamp of the session (its receive time when none)."""
        return next((f.exchange_t for f in self.frames if f.exchange_t is not None), self.start)

    @classmethod
    def load(cls, path: str | Path) -> ReplaySession:
        """Read the market frames of the fixture at ``path``; raises :class:`FixtureError` when unusable."""
        session = read_session(path)
        frames: list[MarketFrame] = []
        channels: dict[str, set[str]] = {}
        depths: dict[str, int] = dict(session.manifest.depths) if session.has_header else {}
        intervals: dict[str, set[int]] = {}
        ids: list[int] = []
        api: str | None = session.manifest.api if session.has_header else None
        for rec in session.records():
            if rec.dir != "recv":
                continue
            try:
                msg = parse_frame(rec.frame)
                info = classify(msg)
            except ValueError as exc:
                raise FixtureError(f"{path} has a bad frame", problems=[f"{path}:{rec.line}: {exc}"]) from exc
            api = api or info.api
            if info.kind == "subscribe" and info.api == "v2" and isinstance(msg.get("result"), dict):
                result = msg["result"]
                if result.get("channel") == "book" and "symbol" in result:
                    depths.setdefault(result["symbol"], int(result.get("depth", 10)))
            if not info.is_data:
                continue
            for symbol in info.symbols:
                channels.setdefault(info.kind, set()).add(symbol)
            _note_extras(msg, info, depths, intervals, ids)
            frames.append(MarketFrame(rec.t, rec.frame, msg, info, rec.line, exchange_time(msg)))
        if not frames:
            raise FixtureError(f"{path} holds no market-data frames", hint="record or generate a session with book/trade data")
        return cls(
            Path(path), session.manifest, api or "v2", frames, channels, depths, intervals,
            (min(ids), max(ids)) if ids else None,
        )


def _note_extras(msg: Any, info: FrameInfo, depths: dict[str, int], intervals: dict[str, set[int]], ids: list[int]) -> None:
    if info.api == "v1":
        name = info.channel_name or ""
        suffix = name.partition("-")[2]
        if info.kind == "book" and suffix.isdigit():
            depths.setdefault(info.symbols[0], int(suffix))
        elif info.kind == "ohlc" and suffix.isdigit():
            intervals.setdefault(info.symbols[0], set()).add(int(suffix))
        return
    for item in msg.get("data") or ():
        if info.kind == "ohlc" and "interval" in item:
            intervals.setdefault(item["symbol"], set()).add(int(item["interval"]))
        elif info.kind == "trade" and isinstance(item.get("trade_id"), int):
            ids.append(item["trade_id"])
        elif info.kind == "book" and info.msg_type == "snapshot":
            size = max(len(item.get("bids") or ()), len(item.get("asks") or ()))
            depths.setdefault(item["symbol"], next((d for d in (10, 25, 100, 500, 1000) if d >= size), size))


@dataclass
class MarketState:
    """The market as far as the replay has got: what a new subscriber's snapshot shows.

    ``lazy=True`` (without ``verify``) defers the book work: book frames are
    queued as they play and applied, in order, the moment a book is read
    (:meth:`book`).  A replay whose subscribers take the recorded frames as they
    are never reads a book, so it never pays for one; a late subscriber, a view
    at another depth or a listener that reads books gets exactly the books the
    eager state would have (the same frames applied in the same order).
    """

    api: str
    depths: dict[str, int]
    on_mismatch: Callable[[MarketFrame, BookCheck], None] | None = None
    #: verify the recorded checksums as frames play (costs a checksum per book message)
    verify: bool = False
    #: apply book frames when a book is read, not when they play (ignored with ``verify``)
    lazy: bool = False
    v2: V2Books = field(init=False)
    v1: V1Books = field(init=False)
    #: v2 ticker items / v1 ticker payloads, per symbol
    tickers: dict[str, Any] = field(default_factory=dict)
    trades: dict[str, deque[Any]] = field(default_factory=dict)
    #: latest candle per (symbol, interval): a v2 item or a v1 row
    candles: dict[tuple[str, int], Any] = field(default_factory=dict)
    #: exchange time of each book's latest message
    book_times: dict[str, float] = field(default_factory=dict)
    #: book frames played but not applied yet (lazy state), oldest first
    _pending: list[MarketFrame] = field(default_factory=list, repr=False)
    #: symbols that have had a book message (applied or pending)
    _booked: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        self.v2 = V2Books(verify=self.verify)
        self.v2.depths.update(self.depths)
        self.v1 = V1Books(verify=self.verify)
        self.lazy = self.lazy and not self.verify

    def book(self, symbol: str) -> OrderBook | None:
        """The recorded book of ``symbol`` (``None`` before its first book message), up to date."""
        if self._pending:
            self.catch_up()
        return (self.v2 if self.api == "v2" else self.v1).books.get(symbol)

    def has_book(self, symbol: str) -> bool:
        """True once ``symbol`` has had a book message (without bringing the books up to date)."""
        return symbol in self._booked

    def catch_up(self) -> None:
        """Apply the book frames a lazy state has queued."""
        pending, self._pending = self._pending, []
        books = self.v2 if self.api == "v2" else self.v1
        for frame in pending:
            books.handle(frame.msg)

    def apply(self, frame: MarketFrame) -> list[BookCheck]:
        """Play ``frame`` into the state; returns the book checks it produced (none when deferred)."""
        kind, msg = frame.info.kind, frame.msg
        if kind == "book":
            self._booked.update(frame.info.symbols)
            if self.lazy:
                self._pending.append(frame)
                if len(self._pending) >= LAZY_BACKLOG:
                    self.catch_up()  # a long unread replay (a loop) does not hold frames without bound
                if frame.exchange_t is not None:
                    for symbol in frame.info.symbols:
                        self.book_times[symbol] = frame.exchange_t
                return []
            if self._pending:
                self.catch_up()
            checks = (self.v2 if self.api == "v2" else self.v1).handle(msg)
            for check in checks:
                if frame.exchange_t is not None:
                    self.book_times[check.symbol] = frame.exchange_t
                if not check.ok and self.on_mismatch is not None:
                    self.on_mismatch(frame, check)
            return checks
        if self.api == "v2":
            for item in msg.get("data") or ():
                symbol = item.get("symbol")
                if kind == "ticker":
                    self.tickers[symbol] = item
                elif kind == "trade":
                    self.trades.setdefault(symbol, deque(maxlen=TRADE_SNAPSHOT)).append(item)
                elif kind == "ohlc":
                    self.candles[(symbol, int(item.get("interval", 1)))] = item
        else:
            pair = frame.info.symbols[0]
            if kind == "ticker":
                self.tickers[pair] = msg[1]
            elif kind == "ohlc":
                suffix = (frame.info.channel_name or "ohlc-1").partition("-")[2]
                self.candles[(pair, int(suffix or 1))] = msg[1]
        return []


_V2_STAMP = re.compile(r'"(timestamp|interval_begin|time_in|time_out)":"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z"')
_V1_STAMP = re.compile(r'"(\d{10})\.(\d{6})"')
_TRADE_ID = re.compile(r'"trade_id":(\d+)')


class Rebaser:
    """Shifts exchange timestamps by ``offset`` seconds and v2 trade ids by ``id_shift``.

    Works on the frame text, so number tokens are untouched.  v2 RFC 3339
    stamps keep their number of fractional digits; v1 epoch strings
    (``"1693415330.621700"``) keep six.
    """

    def __init__(self, api: str, offset: float, id_shift: int = 0) -> None:
        self.api = api
        self.offset_us = round(offset * 1_000_000)
        self.id_shift = id_shift

    @property
    def active(self) -> bool:
        return bool(self.offset_us or self.id_shift)

    def __call__(self, text: str) -> str:
        if not self.active:
            return text
        if self.api == "v2":
            if self.offset_us:
                text = _V2_STAMP.sub(self._v2, text)
            if self.id_shift and '"trade_id"' in text:
                text = _TRADE_ID.sub(lambda m: f'"trade_id":{int(m.group(1)) + self.id_shift}', text)
            return text
        return _V1_STAMP.sub(self._v1, text) if self.offset_us else text

    def _v2(self, m: re.Match[str]) -> str:
        frac = (m.group(3) or ".")[1:]
        seconds = calendar.timegm(time.strptime(m.group(2), "%Y-%m-%dT%H:%M:%S"))
        micros = seconds * 1_000_000 + int(frac[:6].ljust(6, "0")) + self.offset_us
        main = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(micros // 1_000_000))
        digits = f"{micros % 1_000_000:06d}"[: len(frac)] + frac[6:]
        return f'"{m.group(1)}":"{main}{"." + digits if frac else ""}Z"'

    def _v1(self, m: re.Match[str]) -> str:
        micros = int(m.group(1)) * 1_000_000 + int(m.group(2)) + self.offset_us
        return f'"{micros // 1_000_000}.{micros % 1_000_000:06d}"'


def rebase_offset(session: ReplaySession, now: float, *, after: float | None = None) -> float:
    """The shift that moves the session's first exchange time to ``now``.

    With candles in the session, the shift is a whole number of the longest
    candle interval, so interval boundaries stay on the clock.  ``after`` is the
    previous round's shift when looping: the new one is at least a session
    length (plus a second) later, so exchange times never repeat or go back.
    """
    longest = max((i for values in session.intervals.values() for i in values), default=0)
    step = longest * 60 if longest else 1e-6
    offset = round((now - session.first_exchange_t) / step) * step
    if after is not None:
        last = max((f.exchange_t for f in session.frames if f.exchange_t is not None), default=session.end)
        floor = after + (last - session.first_exchange_t) + 1.0
        offset = max(offset, math.ceil(floor / step) * step)
    return round(offset, 6)
