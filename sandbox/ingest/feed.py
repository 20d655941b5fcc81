"""The connection loop: connect, subscribe, verify every book, publish, recover.

One :class:`Feed` owns one WebSocket at a time.  Per frame (synchronously, no
awaits on the hot path): parse with Decimals from the raw tokens, count it,
apply it to the books (:class:`~sandbox.ingest.books.LeanV2Books`, the
v2 books cut to what verifying needs, / :class:`~sandbox.replay.book.V1Books`), check trade ids and exchange time, and
hand one record per data frame and symbol to the publisher.

Recovery:

* a book checksum mismatch or a crossed book: the symbol's book is resubscribed
  (unsubscribe, subscribe with a snapshot); its updates are dropped until the
  fresh snapshot arrives, which is published as a ``snapshot`` record so
  consumers reset; no snapshot within ``resubscribe_timeout_s``: reconnect;
* a closed connection, a failed connect, or a silent feed (nothing for
  ``stale_after_s``, pings unanswered): reconnect with exponential backoff and
  jitter, then subscribe everything again (fresh snapshots).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from sandbox.ingest import protocol
from sandbox.ingest.books import LeanV2Books
from sandbox.ingest.gaps import Clock, TradeIds
from sandbox.ingest.normalise import Normaliser, messages_of
from sandbox.ingest.publisher import Publisher
from sandbox.ingest.settings import IngestSettings
from sandbox.ingest.stats import Stats
from sandbox.replay.book import V1Books
from sandbox.replay.protocol import parse_rfc3339

#: Parses a frame keeping every float token as its exact text (``"0.00005100"``): the book takes
#: text tokens as they are (its Decimals are built from them), and records carry the text, so no
#: Decimal is formatted back.  msgspec's decoder hands each float token's text to the hook, like
#: ``json.JSONDecoder(parse_float=str)`` and with the same result, in about 40 % of its time.
#: Invalid JSON raises ``msgspec.DecodeError``, a ``ValueError``.
parse_frame = msgspec.json.Decoder(float_hook=str).decode

log = logging.getLogger("sandbox.ingest.feed")

#: What applying a malformed book frame raises (``decimal.InvalidOperation`` is an ArithmeticError).
BOOK_ERRORS = (ArithmeticError, ValueError, TypeError, KeyError, IndexError, AttributeError)


def endpoint(base: str, api: str) -> str:
    """The WebSocket URL of ``api`` for a base URL, the way Kraken lays them out.

    Kraken serves v2 at ``wss://ws.kraken.com/v2`` and v1 at ``wss://ws.kraken.com``;
    the venue simulator the same.  A base without a path gets ``/v2`` for v2 and
    ``/`` for v1; a path ending in ``/v2`` or ``/v1`` gets the version asked for;
    any other path is kept as given.
    """
    parts = urlsplit(base)
    path = parts.path.rstrip("/")
    if path in ("", "/v1", "/v2") or path.endswith(("/v1", "/v2")):
        stem = path[:-3] if path.endswith(("/v1", "/v2")) else path
        path = stem + ("/v2" if api == "v2" else "/")
    else:
        path = parts.path
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def greeting_id(msg: Any) -> int | None:
    """The ``connection_id`` of a v2 ``status`` / v1 ``systemStatus`` greeting (``None`` for other frames)."""
    if isinstance(msg, dict):
        if isinstance(msg.get("connectionID"), int):
            return msg["connectionID"]
        if msg.get("channel") == "status":
            for item in msg.get("data") or ():
                if isinstance(item, dict) and isinstance(item.get("connection_id"), int):
                    return item["connection_id"]
    return None


class Backoff:
    """Exponential reconnect delays with equal jitter: ``d/2 + U(0, d/2)``, ``d`` doubling to ``maximum``."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.failures = 0
        self.rng = rng or random.Random()

    def next(self) -> float:
        """The delay before the next attempt (and count one more failure)."""
        ceiling = min(self.maximum, self.initial * (2 ** self.failures))
        self.failures += 1
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """A healthy connection: start again from ``initial``."""
        self.failures = 0


class Feed:
    """Subscriptions, books and the WebSocket of the ingest."""

    def __init__(self, settings: IngestSettings, publisher: Publisher, stats: Stats, normaliser: Normaliser) -> None:
        self.settings = settings
        self.api = settings.api_version
        self.publisher = publisher
        self.stats = stats
        self.normaliser = normaliser
        normaliser.text_tokens = True  # frames are parsed by parse_frame: float tokens stay text
        self.depth = settings.depth
        #: (channel, symbol) pairs wanted, acknowledged, refused (with the reason)
        self.wanted: set[tuple[str, str]] = set()
        self.acked: set[tuple[str, str]] = set()
        self.refused: dict[tuple[str, str], str] = {}
        #: symbols whose book awaits a fresh snapshot, with the monotonic deadline
        self.resyncing: dict[str, float] = {}
        self.ws: Any = None
        self.outbox: list[str] = []
        self.books: LeanV2Books | V1Books = self._new_books()
        self.trade_ids = TradeIds()
        self.clock = Clock()
        self.last_frame = time.monotonic()
        self.last_ping = 0.0
        self.backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self.stopping = asyncio.Event()
        self.changed = asyncio.Event()
        self.wake = asyncio.Event()
        self._deliberate = False
        self._req_ids = itertools.count(1)
        self._attempts = 0
        #: connections opened so far, and the frames received on the current one (greeting = 1)
        self.conn_serial = 0
        self.conn_frames = 0
        self.conn_id: int | None = None
        self._ref_base = 0
        #: the latest exchange timestamp of a book message, as Kraken wrote it (for the lag gauge)
        self.latest_stamp: str | None = None

    # ---- subscriptions -----------------------------------------------------------------

    @property
    def url(self) -> str:
        """The WebSocket URL for the API version spoken now."""
        return endpoint(self.settings.kraken_ws_url, self.api)

    def switch_api(self, api: str) -> bool:
        """Speak ``api`` from now on; reconnects (to that version's URL) when it changes. True if changed."""
        if api == self.api:
            return False
        self.api = api
        self.normaliser.api = api
        self.books = self._new_books()
        self.acked.clear()
        self.reconnect_now()
        return True

    def reconnect_now(self) -> None:
        """Drop the connection (if any) and connect again at once, without backoff."""
        self._deliberate = True
        self.backoff.reset()
        self.wake.set()
        if self.ws is not None:
            asyncio.get_running_loop().create_task(self.ws.close(code=1000, reason="reconnecting"))

    def _new_books(self) -> LeanV2Books | V1Books:
        return LeanV2Books(self.depth) if self.api == "v2" else V1Books()

    @property
    def subscribed(self) -> bool:
        """True when connected and every wanted subscription is acknowledged."""
        return self.ws is not None and bool(self.wanted) and self.wanted <= self.acked

    def want(self, channels: Iterable[str], symbols: Iterable[str], depth: int | None = None) -> tuple[set, set]:
        """Replace the wanted subscriptions; returns ``(added, removed)`` (queued to send when connected)."""
        new = {(c, s) for c in channels for s in symbols}
        depth_changed = depth is not None and depth != self.depth
        if depth is not None:
            self.depth = depth
        added, removed = new - self.wanted, self.wanted - new
        if depth_changed:  # books at the old depth must be subscribed again
            added |= {(c, s) for c, s in new if c == "book"}
            removed |= {(c, s) for c, s in self.wanted if c == "book"}
        self.wanted = new
        for key in removed | added:
            self.acked.discard(key)
            self.refused.pop(key, None)
        if self.ws is not None:
            self._queue(removed, unsubscribe=True)
            self._queue(added)
        return added, removed

    def resubscribe_all(self) -> None:
        """Subscribe everything again (fresh snapshots), e.g. before a replay run starts."""
        if self.ws is None:
            return
        self.acked.clear()
        self._queue(self.wanted, unsubscribe=True)
        self._queue(self.wanted)

    def _queue(self, pairs: Iterable[tuple[str, str]], *, unsubscribe: bool = False) -> None:
        by_channel: dict[str, list[str]] = {}
        for channel, symbol in sorted(pairs):
            by_channel.setdefault(channel, []).append(symbol)
        for channel, symbols in by_channel.items():
            self.outbox.append(
                protocol.subscribe(self.api, channel, symbols, depth=self.depth, req_id=next(self._req_ids), unsubscribe=unsubscribe)
            )

    def resync(self, symbol: str, why: str) -> None:
        """Ask for a fresh snapshot of ``symbol``'s book (unless one is already on its way)."""
        if symbol in self.resyncing:
            return
        log.warning("book %s: %s; resubscribing for a fresh snapshot", symbol, why)
        self.resyncing[symbol] = time.monotonic() + self.settings.resubscribe_timeout_s
        self.stats.resubscribes += 1
        self.stats.run.resubscribes += 1
        self.acked.discard(("book", symbol))
        self.clock.forget("book", symbol)
        self._queue([("book", symbol)], unsubscribe=True)
        self._queue([("book", symbol)])

    def feed_lag(self, now: float) -> float | None:
        """``now`` minus the latest book exchange timestamp (seconds), or ``None`` before any."""
        stamp = self.latest_stamp
        if stamp is None:
            return None
        try:
            return now - (parse_rfc3339(stamp) if stamp.endswith("Z") else float(stamp))
        except ValueError:
            return None

    # ---- frames -----------------------------------------------------------------------

    def handle(self, raw: str | bytes, recv_ns: int) -> None:
        """Process one frame (synchronous: the hot path)."""
        stats = self.stats
        run = stats.run
        stats.frames += 1
        run.frames += 1
        self.conn_frames += 1
        try:
            msg = parse_frame(raw)
        except ValueError as exc:
            stats.invalid_frames += 1
            run.invalid_frames += 1
            log.error("frame is not JSON (%s): %.120r", exc, raw)
            return
        if self.conn_frames == 1:
            self.conn_id = run.connections[self.conn_serial] = greeting_id(msg)
        kind_of = type(msg)
        if kind_of is dict:
            if "channel" not in msg:
                self._control(msg)
                return
            channel = msg["channel"]
            if channel == "book" and self.api == "v2":
                kind = msg.get("type")
                if kind == "update" or kind == "snapshot":
                    self._v2_book(msg, kind, raw, recv_ns)
                    return
            elif channel == "trade" and self.api == "v2" and "method" not in msg and self._v2_trades(msg, recv_ns):
                return
        elif kind_of is not list:
            self._control(msg)
            return
        elif len(msg) < 4:
            return
        try:
            checks = self.books.handle(msg)
        except BOOK_ERRORS as exc:
            self._invalid_book(msg, raw, exc)
            return
        check_index = 0
        produced = False
        for channel, symbol, kind, payload in messages_of(msg):
            if channel == "book":
                check = checks[check_index] if check_index < len(checks) else None
                check_index += 1
                if not self._book_ok(symbol, kind, check):
                    continue
            elif channel == "trade":
                self._check_trades(symbol, payload)
            topic, key, value, seq = self.normaliser.record(channel, symbol, kind, payload, recv_ns)
            self.publisher.produce(topic, key, value, recv_ns, seq, self._ref_base | self.conn_frames)
            produced = True
        if produced:
            run.data_frame(recv_ns)

    def _v2_book(self, msg: dict[str, Any], kind: str, raw: str | bytes, recv_ns: int) -> None:
        """A v2 book snapshot or update (nine frames in ten): the general path of :meth:`handle`, unrolled."""
        data = msg.get("data") or ()
        apply = self.books.apply  # type: ignore[union-attr] - v2: LeanV2Books
        try:
            checks = [apply(kind, data[0])] if len(data) == 1 else [apply(kind, item) for item in data]
        except BOOK_ERRORS as exc:
            self._invalid_book(msg, raw, exc)
            return
        # Every item is a dict with a symbol here (apply raised otherwise): what messages_of yields.
        produced = False
        record, produce = self.normaliser.record, self.publisher.produce
        stats = self.stats
        run = stats.run
        resyncing = self.resyncing
        for item, (symbol, expected, computed, crossed, stamp) in zip(data, checks):
            if (expected is not None and expected == computed and not crossed and type(stamp) is str  # noqa: E721
                    and stamp.endswith("Z") and symbol not in resyncing):
                # _verdict's common case, inline: a verified, uncrossed book, stamped, not resyncing
                stats.checksums_verified += 1
                run.checksums_verified += 1
                self.latest_stamp = stamp
                if not self.clock.in_order(("book", symbol), stamp):
                    stats.out_of_order += 1
                    run.out_of_order += 1
            elif not self._verdict(symbol, kind, expected, computed, crossed, stamp):
                continue
            topic, key, value, seq = record("book", symbol, kind, item, recv_ns)
            produce(topic, key, value, recv_ns, seq, self._ref_base | self.conn_frames)
            produced = True
        if produced:
            run.data_frame(recv_ns)

    def _v2_trades(self, msg: dict[str, Any], recv_ns: int) -> bool:
        """A v2 trade frame of one symbol (what Kraken sends): the general path of :meth:`handle`, unrolled.

        False (nothing done) for any other shape, which the general path then takes: items that
        are not all objects of one symbol.  A frame without ``method`` is no book acknowledgement,
        so the books have nothing to do with it; what is checked and published is what
        :func:`~sandbox.ingest.normalise.messages_of` yields for it: one message, all the items.
        """
        data = msg.get("data")
        if type(data) is not list or not data:  # noqa: E721 - parsed JSON
            return False
        first = data[0]
        if type(first) is not dict:  # noqa: E721
            return False
        symbol = first.get("symbol")
        if type(symbol) is not str:  # noqa: E721
            return False
        for item in data:
            if type(item) is not dict or item.get("symbol") != symbol:  # noqa: E721
                return False
        self._check_trades(symbol, data)
        topic, key, value, seq = self.normaliser.record("trade", symbol, msg.get("type"), data, recv_ns)
        self.publisher.produce(topic, key, value, recv_ns, seq, self._ref_base | self.conn_frames)
        self.stats.run.data_frame(recv_ns)
        return True

    def _invalid_book(self, msg: Any, raw: str | bytes, exc: Exception) -> None:
        """A level that is no number (decimal.InvalidOperation), a malformed item: the frame is counted
        as invalid and its books are resubscribed (they may be half-applied)."""
        self.stats.invalid_frames += 1
        self.stats.run.invalid_frames += 1
        log.error("book frame not applicable (%s: %s): %.120r", type(exc).__name__, exc, raw)
        for channel, symbol, _, _ in messages_of(msg):
            if channel == "book":
                self.resync(symbol, "invalid book frame")

    def _book_ok(self, symbol: str, kind: str | None, check: Any) -> bool:
        """Count the check; False when the message must not be published (and resync started)."""
        if check is None:
            return self._verdict(symbol, kind, None, None, False, None, checked=False)
        return self._verdict(symbol, kind, check.expected, check.computed, check.crossed, check.timestamp)

    def _verdict(self, symbol: str, kind: str | None, expected: int | None, computed: int | None, crossed: bool,
                 stamp: Any, checked: bool = True) -> bool:
        """:meth:`_book_ok` on the check's fields (``checked=False``: the message had no check)."""
        stats, run = self.stats, self.stats.run
        if symbol in self.resyncing:
            if kind != "snapshot":
                stats.dropped += 1
                run.dropped += 1
                return False
            del self.resyncing[symbol]
            run.resyncs_completed += 1
            log.info("book %s: fresh snapshot received", symbol)
        if not checked:
            return True
        if expected is not None:
            if expected == computed:
                stats.checksums_verified += 1
                run.checksums_verified += 1
            else:
                stats.checksums_failed[symbol] += 1
                run.checksums_failed += 1
                self.resync(symbol, f"checksum mismatch (sent {expected}, computed {computed})")
                return False
        if crossed:
            stats.crossed += 1
            run.crossed += 1
            self.resync(symbol, "crossed book")
            return False
        self.latest_stamp = stamp or self.latest_stamp
        # Only v2 stamps each book message; a v1 update's stamps are its levels' own (a revealed
        # or deleted level keeps an older one), so their order proves nothing: checksums do.
        if stamp is not None and self.api == "v2":
            if type(stamp) is str and stamp.endswith("Z"):  # noqa: E721 - what Kraken v2 sends
                in_order = self.clock.in_order(("book", symbol), stamp)
            else:
                in_order = self.clock.check("book", symbol, stamp).ok
            if not in_order:
                stats.out_of_order += 1
                run.out_of_order += 1
        return True

    def _check_trades(self, symbol: str, items: Any) -> None:
        stats, run = self.stats, self.stats.run
        clock_key = ("trade", symbol)
        for item in items if isinstance(items, list) else ():
            trade_id = item.get("trade_id") if isinstance(item, dict) else (item[6] if isinstance(item, list) and len(item) > 6 else None)
            stamp = item.get("timestamp") if isinstance(item, dict) else (item[2] if isinstance(item, list) and len(item) > 2 else None)
            if type(stamp) is str and stamp.endswith("Z"):  # noqa: E721 - v2: Clock.check without its result
                in_order = self.clock.in_order(clock_key, stamp)
            else:
                in_order = self.clock.check("trade", symbol, stamp).ok
            if not in_order:
                stats.out_of_order += 1
                run.out_of_order += 1
            result = self.trade_ids.check(symbol, trade_id)
            if result.missing:
                stats.gaps += 1
                run.gaps += 1
                stats.missing += result.missing
                run.missing += result.missing
                log.warning("trades %s: gap of %d before trade id %s", symbol, result.missing, trade_id)
            if result.out_of_order:
                stats.out_of_order += 1
                run.out_of_order += 1

    def _control(self, msg: Any) -> None:
        """Acknowledgements, errors, pongs, status (v2 channel-less frames and v1 events)."""
        if self.api == "v1":
            self.books.handle(msg)
        ack = protocol.ack_of(msg)
        if ack is None:
            return
        key = (ack.channel or "", ack.symbol or "")
        if ack.status == "subscribed":
            self.acked.add(key)
            self.refused.pop(key, None)
            if self.api == "v2":
                self.books.handle(msg)
        elif ack.status == "unsubscribed":
            self.acked.discard(key)
            if self.api == "v2":
                self.books.handle(msg)
        else:
            self.refused[key] = ack.error or "refused"
            log.error("subscription %s %s refused: %s", ack.channel, ack.symbol, ack.error)
        self.changed.set()

    # ---- the connection -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve, reconnect with backoff, until :meth:`stop`."""
        from sandbox.ingest import wsclient

        while not self.stopping.is_set():
            if self._attempts and not self._deliberate:
                self.stats.reconnects += 1
                self.stats.run.reconnects += 1
            self._attempts += 1
            self._deliberate = False
            self.wake.clear()
            url = self.url
            try:
                self.stats.detail = f"connecting to {url}"
                self._fresh_connection()
                ws = await wsclient.connect(url, self._on_message, open_timeout=10, max_size=16 * 2**20)
                try:
                    await self._serve(ws)
                finally:
                    await ws.close()
                reason = "connection closed"
            except wsclient.InvalidURL as exc:
                reason = f"invalid URL: {exc}"
            except (OSError, TimeoutError, *wsclient.ConnectErrors) as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                self._disconnected()
            if self.stopping.is_set():
                break
            if self._deliberate:
                continue
            delay = self.backoff.next()
            self.stats.detail = f"{reason}; reconnecting in {delay:.2f}s"
            log.warning("websocket %s: %s; reconnecting in %.2fs", url, reason, delay)
            waiters = [asyncio.ensure_future(self.stopping.wait()), asyncio.ensure_future(self.wake.wait())]
            try:
                await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    def _on_message(self, raw: str | bytes, recv_ns: int) -> None:
        """One message off the socket: handle it, then send what handling queued (a resubscribe)."""
        self.handle(raw, recv_ns)
        if self.outbox:
            self.flush_outbox()

    def _fresh_connection(self) -> None:
        """Per-connection state, reset before the connection's first frame can arrive."""
        self.conn_serial += 1
        self.conn_frames = 0
        self.conn_id = None
        self._ref_base = self.conn_serial << 32
        self.books = self._new_books()
        self.trade_ids = TradeIds()
        self.clock = Clock()
        self.resyncing.clear()
        self.acked.clear()
        self.last_frame = time.monotonic()

    async def _serve(self, ws: Any) -> None:
        """Subscribe, then wait while frames arrive (each goes to :meth:`handle` as it is parsed)."""
        self.ws = ws
        self.stats.connected = True
        self.stats.detail = "connected"
        log.info("connected to %s", self.url)
        self._queue(self.wanted)
        await self.send_outbox()
        watchdog = asyncio.create_task(self._watchdog(ws))
        try:
            await ws.wait_closed()
        finally:
            watchdog.cancel()

    def _disconnected(self) -> None:
        self.ws = None
        self.outbox.clear()
        self.acked.clear()
        self.resyncing.clear()
        self.stats.connected = False
        self.stats.subscribed = False

    async def send_outbox(self) -> None:
        """Send the queued requests (subscribes, unsubscribes, pings)."""
        self.flush_outbox()

    def flush_outbox(self) -> None:
        """Write the queued requests to the socket now (they are small: no waiting)."""
        ws = self.ws
        while self.outbox and ws is not None:
            ws.send_now(self.outbox.pop(0))

    async def _watchdog(self, ws: Any) -> None:
        """Once a second: ping a quiet feed, drop a silent one, give up on unanswered resubscribes."""
        stale = self.settings.stale_after_s
        seen = self.stats.frames
        while True:
            await asyncio.sleep(min(1.0, stale / 4))
            now = time.monotonic()
            if self.stats.frames != seen:  # frames arrived since the last look (no clock read per frame)
                seen = self.stats.frames
                self.last_frame = now
            if self.subscribed:
                self.backoff.reset()
            if self.outbox:
                await self.send_outbox()
            quiet = now - self.last_frame
            if quiet > stale:
                log.warning("no frame for %.1fs: reconnecting", quiet)
                await ws.close(code=1001, reason="feed went silent")
                return
            if quiet > stale / 2 and now - self.last_ping > stale / 2:
                self.last_ping = now
                ping = {"method": "ping"} if self.api == "v2" else {"event": "ping"}
                await ws.send(json.dumps(ping))
            late = [s for s, deadline in self.resyncing.items() if now > deadline]
            if late:
                log.warning("no fresh snapshot for %s in time: reconnecting", ", ".join(late))
                await ws.close(code=1001, reason="resubscribe unanswered")
                return

    def stop(self) -> None:
        """Ask :meth:`run` to end (it closes the connection)."""
        self.stopping.set()
        self.wake.set()
        if self.ws is not None:
            asyncio.get_running_loop().create_task(self.ws.close())
