"""The venue's WebSocket market data: Kraken v2 (``/v2``) and v1 (``/``, ``/v1``), replayed.

:class:`KrakenWsServer` serves one recorded or generated session
(:mod:`sandbox.replay.fixture`) to any number of clients, speaking Kraken's
protocol: the status greeting on connect, ``subscribe`` / ``unsubscribe`` with
Kraken's acknowledgements and error acks, ``ping`` / ``pong``, a heartbeat about
once a second, then book snapshots and updates with checksums, trades, ticker
and candles for exactly what each client subscribed to.

The session plays once, on one clock, like a market: the replay starts with the
first data subscription (or at start-up), paced in real time, ``speed`` times
faster, or as fast as the clients take it (``speed=None``), and with ``loop``
starts again at the end with exchange timestamps rebased to now.  A client
subscribing later gets a snapshot of the book as it stands, then updates.
Updates of a book subscribed at the recorded depth are the recorded frames,
byte for byte; at another depth they are derived from the recorded book
(:class:`~sandbox.replay.feed.DepthView`), with checksums that verify.

Slow clients slow the replay (each client's queue holds at most
``high_water`` frames) rather than lose frames.  Run it with
``python -m sandbox.venue.ws --session FILE --port 8081 [--speed N | --max] [--loop]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import random
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from sandbox.errors import EnvironmentProblem, SandboxError
from sandbox.replay import feed
from sandbox.replay.feed import DepthView
from sandbox.replay.player import MarketFrame, MarketState, Rebaser, ReplaySession, rebase_offset
from sandbox.replay.protocol import dumps_exact, format_rfc3339

log = logging.getLogger(__name__)

DEPTHS = (10, 25, 100, 500, 1000)
INTERVALS = (1, 5, 15, 30, 60, 240, 1440, 10080, 21600)
#: v2 public channels this venue replays; ``instrument`` and ``level3`` exist at Kraken but not here
V2_REPLAYED = ("book", "trade", "ticker", "ohlc")
V2_KRAKEN_ONLY = ("instrument", "level3")
V1_REPLAYED = ("book", "trade", "ticker", "ohlc", "spread")


@dataclass
class ReplayOptions:
    """How the session plays."""

    #: 1.0 = real time, N = N times faster, ``None`` = as fast as the clients take it
    speed: float | None = 1.0
    loop: bool = False
    #: shift exchange timestamps so the session starts now; default: on when looping
    rebase: bool | None = None
    #: ``"subscribe"``: with the first data subscription; ``"start"``: with the server;
    #: ``"manual"``: when :meth:`KrakenWsServer.start_replay` is called
    start_on: str = "subscribe"
    heartbeat_s: float = 1.0
    #: frames queued per client before the replay waits for it
    high_water: int = 10_000
    #: verify the recorded checksums while playing (mismatches are logged and counted; costs CPU)
    verify: bool = False


@dataclass
class ReplayStats:
    """What the server has done so far."""

    frames_played: int = 0
    frames_sent: int = 0
    loops_completed: int = 0
    checksum_mismatches: int = 0
    clients: int = 0
    connections: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    #: worst delay behind the paced schedule (seconds)
    max_lag_s: float = 0.0


#: frames written to the socket at once when a client's outbox has several
BATCH = 256


def _batching(ws: ServerConnection) -> bool:
    """Whether ``ws`` exposes what :func:`_send_batch` uses (websockets' new asyncio API, >= 13)."""
    return all(hasattr(ws, name) for name in ("send_context", "protocol", "transport"))


async def _send_batch(ws: ServerConnection, texts: list[str]) -> None:
    """Several text frames in one socket write (one ``send()`` each would cost a syscall each).

    Without extensions (no compression negotiated), a server's text frame is
    two to ten header bytes and the UTF-8 payload, unmasked (RFC 6455 5.2):
    written here directly, it costs a fraction of websockets' frame objects.
    The protocol's checks are kept: the connection must be open, with no
    fragmented message in progress.  A connection whose protocol stamps frames
    (the venue's send times) gets one stamp for the batch: one socket write.
    """
    async with ws.send_context():
        protocol = ws.protocol
        if protocol.extensions or protocol.expect_continuation_frame or protocol.state is not State.OPEN:
            for text in texts:
                protocol.send_text(text.encode())
            data = b"".join(chunk for chunk in protocol.data_to_send() if chunk)
        else:
            stamp = getattr(protocol, "stamp_batch", None)
            if stamp is not None:
                stamp(texts)
            data = b"".join([_text_frame(text.encode()) for text in texts])
        ws.transport.write(data)


def _text_frame(payload: bytes) -> bytes:
    """One unmasked, final text frame (a server's) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        return b"\x81" + n.to_bytes(1, "big") + payload
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


class _Client:
    """One connection: its subscriptions and an outbox drained by its own writer task."""

    ids = itertools.count(1)

    def __init__(self, ws: ServerConnection, api: str) -> None:
        self.id = next(self.ids)
        self.ws = ws
        self.api = api
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.closed = False
        self.sent = 0
        #: subscription keys: ("book", sym, depth), ("trade", sym), ("ohlc", sym, interval), ("heartbeat",)...
        self.subs: set[tuple[Any, ...]] = set()

    def push(self, text: str) -> None:
        if not self.closed:
            self.outbox.append(text)
            self.wake.set()

    async def writer(self, low_water: int) -> None:
        """Send the outbox in order; queued frames go out in batches, one socket write per batch."""
        batch = _batching(self.ws)
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.outbox:
                    if batch and len(self.outbox) > 1:
                        texts = [self.outbox.popleft() for _ in range(min(len(self.outbox), BATCH))]
                        await _send_batch(self.ws, texts)
                        self.sent += len(texts)
                    else:
                        await self.ws.send(self.outbox.popleft())
                        self.sent += 1
                    if len(self.outbox) <= low_water:
                        self.space.set()
                self.space.set()
        except ConnectionClosed:
            pass
        finally:
            self.close()

    async def drain(self, high_water: int) -> None:
        while len(self.outbox) > high_water and not self.closed:
            self.space.clear()
            await self.space.wait()

    def close(self) -> None:
        self.closed = True
        self.outbox.clear()
        self.space.set()


@dataclass(eq=False)
class _BookGroup:
    """Every client of one symbol at one depth: they share what they have been sent."""

    symbol: str
    depth: int
    view: DepthView | None
    #: the recorded frames can be forwarded as they are
    passthrough: bool
    channel_id: int = 0
    members: set[_Client] = field(default_factory=set)
    #: subscribed before the book's first snapshot reached the replay
    pending: set[_Client] = field(default_factory=set)
    #: the book moved without the view following (frames forwarded as recorded, or nobody subscribed)
    dirty: bool = False


class KrakenWsServer:
    """A Kraken WebSocket endpoint replaying ``session`` (a :class:`ReplaySession` or a fixture path)."""

    def __init__(
        self,
        session: ReplaySession | str | Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        options: ReplayOptions | None = None,
        extra_symbols: Iterable[str] = (),
        compression: str | None = None,
        frame_listeners: Iterable[Callable[[MarketFrame, MarketState], None]] = (),
    ) -> None:
        self.session = session if isinstance(session, ReplaySession) else ReplaySession.load(session)
        #: Called after each replayed frame is applied to the market (the venue's matching engine listens).
        self.frame_listeners = list(frame_listeners)
        self.api = self.session.api
        self.host = host
        self.port = port
        self.options = options or ReplayOptions()
        self.symbols = self.session.symbols | set(extra_symbols)
        self.compression = compression
        self.stats = ReplayStats()
        # As fast as possible, the books are brought up to date only when read (a snapshot, a view at
        # another depth, a listener): forwarding the recorded frames as they are never pays for them.
        # A paced replay has the time to keep them current as it goes.
        self.state = MarketState(
            self.api, self.session.depths, on_mismatch=self._mismatch, verify=self.options.verify,
            lazy=self.options.speed is None,
        )
        self.rebaser = Rebaser(self.api, 0.0)
        self._groups: dict[tuple[str, int], _BookGroup] = {}
        self._by_symbol: dict[str, list[_BookGroup]] = {}
        self._subs: dict[tuple[Any, ...], set[_Client]] = {}
        self._channel_ids: dict[tuple[str, str], int] = {}
        self._clients: set[_Client] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: Server | None = None
        self._play_task: asyncio.Task[None] | None = None
        self._finished: asyncio.Event | None = None
        self._rng = random.Random()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> int:
        """Listen, and start the replay now if ``start_on == "start"``; returns the port."""
        self._finished = asyncio.Event()
        try:
            self._server = await serve(
                self._handle, self.host, self.port, process_request=self._route, compression=self.compression,
                max_size=2**20, close_timeout=2,
            )
        except OSError as exc:
            raise EnvironmentProblem(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}", hint="choose another --port"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        if self.options.start_on == "start":
            self._start_replay()
        return self.port

    async def stop(self) -> None:
        """Stop the replay, close every connection and the listener."""
        if self._play_task is not None:
            self._play_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._play_task
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def __aenter__(self) -> KrakenWsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The endpoint for the session's API version."""
        return f"ws://{self.host}:{self.port}{'/v2' if self.api == 'v2' else ''}"

    async def wait_finished(self, timeout: float | None = None) -> bool:
        """Wait until the session has played to its end (never, when looping); True if it did."""
        assert self._finished is not None, "start() first"
        try:
            await asyncio.wait_for(self._finished.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _mismatch(self, frame: MarketFrame, check: Any) -> None:
        self.stats.checksum_mismatches += 1
        log.warning("%s:%d: recorded checksum mismatch for %s", self.session.path, frame.line, check.symbol)

    # -- the replay ------------------------------------------------------------------------

    def start_replay(self) -> None:
        """Start the replay now (for ``start_on="manual"``; a no-op once started)."""
        self._start_replay()

    def _start_replay(self) -> None:
        if self._play_task is None:
            self.stats.started_at = time.time()
            self._play_task = self._spawn(self._play())

    async def _play(self) -> None:
        opts, frames = self.options, self.session.frames
        loop = asyncio.get_running_loop()
        rebase = opts.loop if opts.rebase is None else opts.rebase
        ids = self.session.trade_ids
        offset: float | None = None
        for round_ in itertools.count():
            if rebase:
                # a fast loop must not reuse (or go back on) the times of the round before
                offset = rebase_offset(self.session, time.time(), after=offset)
            id_shift = round_ * (ids[1] - ids[0] + 1) if ids else 0
            self.rebaser = Rebaser(self.api, offset or 0.0, id_shift)
            t0, wall0 = frames[0].t, loop.time()
            for i, frame in enumerate(frames):
                if opts.speed is not None:
                    delay = wall0 + (frame.t - t0) / opts.speed - loop.time()
                    if delay > 0.0005:
                        await asyncio.sleep(delay)
                    elif delay < -self.stats.max_lag_s:
                        self.stats.max_lag_s = -delay
                for client in self._dispatch(frame):
                    if len(client.outbox) > opts.high_water:
                        await client.drain(opts.high_water)
                self.stats.frames_played += 1
                if i % 64 == 63:
                    await asyncio.sleep(0)
            self.stats.loops_completed += 1
            if not opts.loop:
                break
        self.stats.finished_at = time.time()
        assert self._finished is not None
        self._finished.set()

    def _dispatch(self, frame: MarketFrame) -> list[_Client]:
        """Apply ``frame`` to the market and queue it (or what it becomes) for its subscribers."""
        if frame.info.kind == "book":
            return self._dispatch_book(frame)
        self.state.apply(frame)
        self._notify(frame)
        touched: list[_Client] = []
        info = frame.info
        if self.api == "v1":
            pair = info.symbols[0]
            key = self._v1_key(info.kind, pair, info.channel_name or info.kind)
            members = self._subs.get(key)
            if members:
                text = self.rebaser(self._v1_rechannel(frame.text, info.channel_name or info.kind, pair))
                touched.extend(self._send(members, text))
            return touched
        for symbol in info.symbols:
            key = self._v2_key(info.kind, symbol, frame.msg)
            members = self._subs.get(key)
            if not members:
                continue
            if len(info.symbols) == 1:
                text = frame.text
            else:
                items = [d for d in frame.msg["data"] if d.get("symbol") == symbol]
                text = dumps_exact({**frame.msg, "data": items})
            touched.extend(self._send(members, self.rebaser(text)))
        return touched

    def _notify(self, frame: MarketFrame) -> None:
        for listener in self.frame_listeners:
            listener(frame, self.state)

    def _dispatch_book(self, frame: MarketFrame) -> list[_Client]:
        info = frame.info
        forwardable = info.msg_type == "update" and len(info.symbols) == 1
        if not forwardable:
            for symbol in info.symbols:
                for group in self._by_symbol.get(symbol, ()):
                    self._resync(group)
        self.state.apply(frame)
        self._notify(frame)
        touched: list[_Client] = []
        for symbol in info.symbols:
            groups = self._by_symbol.get(symbol)
            if not groups or not self.state.has_book(symbol):
                continue
            for group in groups:
                if not group.members:
                    group.dirty = True  # the book moved without the view
                elif group.passthrough and forwardable:
                    # the recorded frame as it is: the book itself is not needed (nor brought up to date)
                    text = frame.text if self.api == "v2" else self._v1_rechannel(frame.text, f"book-{group.depth}", symbol)
                    group.dirty = True
                    touched.extend(self._send(group.members, self.rebaser(text)))
                else:
                    text = self._book_update(group, frame.exchange_t)
                    if text is not None:
                        touched.extend(self._send(group.members, self.rebaser(text)))
                if group.pending:
                    touched.extend(self._send(group.pending, self.rebaser(self._book_snapshot(group))))
                    group.members |= group.pending
                    group.pending.clear()
        return touched

    def _view(self, group: _BookGroup) -> DepthView:
        """The group's view of the book (created on first use; the book brought up to date)."""
        book = self.state.book(group.symbol)
        assert book is not None, "a view needs a book: check has_book() first"
        if group.view is None:
            group.view = DepthView(book, group.depth)
        return group.view

    def _resync(self, group: _BookGroup) -> None:
        """After forwarded frames, make the group's view match the book again (before it moves)."""
        if group.dirty and group.view is not None:
            self._view(group).snapshot()
        group.dirty = False

    def _book_update(self, group: _BookGroup, exchange_t: float | None) -> str | None:
        view = self._view(group)
        bids, asks = view.update()
        if not bids and not asks:
            return None
        book = view.book
        if self.api == "v2":
            stamp = None if exchange_t is None else format_rfc3339(exchange_t)
            return feed.v2_book("update", group.symbol, bids, asks, book.checksum(), stamp)
        stamp = None if exchange_t is None else f"{exchange_t:.6f}"
        return feed.v1_book_update(
            group.channel_id, f"book-{group.depth}", group.symbol, bids, asks, book.checksum(), stamp
        )

    def _book_snapshot(self, group: _BookGroup) -> str:
        view = self._view(group)
        bids, asks = view.snapshot()
        group.dirty = False
        if self.api == "v2":
            when = self.state.book_times.get(group.symbol)
            stamp = None if when is None else format_rfc3339(when)
            return feed.v2_book("snapshot", group.symbol, bids, asks, view.book.checksum(), stamp)
        return feed.v1_book_snapshot(group.channel_id, f"book-{group.depth}", group.symbol, bids, asks)

    def _send(self, clients: Iterable[_Client], text: str) -> list[_Client]:
        out = []
        for client in clients:
            client.push(text)
            out.append(client)
        self.stats.frames_sent += len(out)
        return out

    # -- keys and channel ids ----------------------------------------------------------------

    @staticmethod
    def _v2_key(kind: str, symbol: str, msg: Any) -> tuple[Any, ...]:
        if kind == "ohlc":
            item = next((d for d in msg.get("data") or () if d.get("symbol") == symbol), {})
            return ("ohlc", symbol, int(item.get("interval", 1)))
        return (kind, symbol)

    @staticmethod
    def _v1_key(kind: str, pair: str, channel_name: str) -> tuple[Any, ...]:
        if kind == "ohlc":
            return ("ohlc", pair, int(channel_name.partition("-")[2] or 1))
        return (kind, pair)

    def _channel_id(self, channel_name: str, pair: str) -> int:
        key = (channel_name, pair)
        if key not in self._channel_ids:
            self._channel_ids[key] = 100 + len(self._channel_ids) * 7 + self._rng.randrange(7)
        return self._channel_ids[key]

    def _v1_rechannel(self, text: str, channel_name: str, pair: str) -> str:
        """A v1 data frame with this venue's channel id (and ``channel_name``) instead of the recorder's."""
        head, _, rest = text.partition(",")
        cid = self._channel_id(channel_name, pair)
        if not rest.endswith(f'"{channel_name}",{json.dumps(pair)}]'):
            tail = rest.rsplit(",", 2)[0]
            rest = f"{tail},{json.dumps(channel_name)},{json.dumps(pair)}]"
        return f"[{cid},{rest}"

    # -- connections ---------------------------------------------------------------------------

    def _route(self, connection: ServerConnection, request: Any) -> Any:
        path = request.path.split("?", 1)[0].rstrip("/") or "/"
        if path in (("/v2",) if self.api == "v2" else ("/", "/v1")):
            return None
        other = "v1 at / and /v1" if self.api == "v1" else "v2 at /v2"
        return connection.respond(404, f"this venue replays a {self.api} session: connect to {other}\n")

    async def _handle(self, ws: ServerConnection) -> None:
        client = _Client(ws, self.api)
        self._clients.add(client)
        self.stats.clients = len(self._clients)
        self.stats.connections += 1
        writer = self._spawn(client.writer(max(1, self.options.high_water // 2)))
        beat = self._spawn(self._heartbeats(client))
        conn_id = self._rng.getrandbits(63)
        client.push(feed.v2_status(conn_id) if self.api == "v2" else feed.v1_system_status(conn_id))
        try:
            async for message in ws:
                received = time.time()
                if isinstance(message, bytes):
                    message = message.decode("utf-8", "replace")
                if self.api == "v2":
                    self._request_v2(client, message, received)
                else:
                    self._request_v1(client, message)
        except ConnectionClosed:
            pass
        finally:
            self._drop(client)
            client.close()
            beat.cancel()
            writer.cancel()

    async def _heartbeats(self, client: _Client) -> None:
        text = feed.V2_HEARTBEAT if self.api == "v2" else feed.V1_HEARTBEAT
        while not client.closed:
            await asyncio.sleep(self.options.heartbeat_s)
            if any(key[0] != "status" for key in client.subs):
                client.push(text)

    def _drop(self, client: _Client) -> None:
        self._clients.discard(client)
        self.stats.clients = len(self._clients)
        for group in self._groups.values():
            group.members.discard(client)
            group.pending.discard(client)
        for members in self._subs.values():
            members.discard(client)

    # -- v2 requests ---------------------------------------------------------------------------

    def _request_v2(self, client: _Client, message: str, received: float) -> None:
        time_in = format_rfc3339(received)
        try:
            req = json.loads(message, parse_float=Decimal)
        except json.JSONDecodeError:
            req = None
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            client.push(feed.v2_error("error", "Malformed request", time_in, format_rfc3339(time.time())))
            return
        method, req_id = req["method"], req.get("req_id")
        if method == "ping":
            client.push(feed.v2_pong(time_in, format_rfc3339(time.time()), req_id=req_id))
        elif method in ("subscribe", "unsubscribe"):
            params = req.get("params")
            if not isinstance(params, dict) or not isinstance(params.get("channel"), str):
                client.push(feed.v2_error(method, "Malformed request", time_in, format_rfc3339(time.time()), req_id=req_id))
                return
            self._subscription_v2(client, method, params, req_id, time_in)
        else:
            client.push(feed.v2_error(method, f"Method {method} not supported", time_in, format_rfc3339(time.time()), req_id=req_id))

    def _subscription_v2(self, client: _Client, method: str, params: dict[str, Any], req_id: Any, time_in: str) -> None:
        channel = params["channel"]

        def error(text: str, symbol: str | None = None) -> None:
            client.push(feed.v2_error(method, text, time_in, format_rfc3339(time.time()), symbol=symbol, req_id=req_id))

        def ack(result: dict[str, Any], warnings: list[str] | None = None) -> None:
            client.push(feed.v2_ack(method, result, time_in, format_rfc3339(time.time()), req_id=req_id, warnings=warnings))

        if channel in ("heartbeat", "status"):
            key = (channel,)
            (client.subs.add if method == "subscribe" else client.subs.discard)(key)
            ack({"channel": channel})
            return
        if channel in V2_KRAKEN_ONLY:
            return error(f"Channel {channel} is not available in this replay venue")
        if channel not in V2_REPLAYED:
            return error(f"Channel {channel} not supported")
        symbols = params.get("symbol")
        if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) for s in symbols):
            return error("Malformed request: params.symbol must be a list of currency pairs")
        depth = int(params.get("depth", 10)) if channel == "book" else None
        interval = int(params.get("interval", 1)) if channel == "ohlc" else None
        if depth is not None and depth not in DEPTHS:
            return error("Subscription depth not supported")
        if interval is not None and interval not in INTERVALS:
            return error("Subscription ohlc interval not supported")
        snapshot = bool(params.get("snapshot", channel != "trade"))
        for symbol in symbols:
            key: tuple[Any, ...] = (channel, symbol) if channel != "ohlc" else (channel, symbol, interval)
            if channel == "book":
                key = (channel, symbol, depth)
            result: dict[str, Any] = {"channel": channel}
            if depth is not None:
                result["depth"] = depth
            if interval is not None:
                result["interval"] = interval
            if channel == "ticker":
                result["event_trigger"] = params.get("event_trigger", "trades")
            result["snapshot"] = snapshot
            result["symbol"] = symbol
            if symbol not in self.symbols:
                error(f"Currency pair not supported {symbol}", symbol)
                continue
            if method == "unsubscribe":
                if key not in client.subs:
                    error("Subscription Not Found", symbol)
                    continue
                self._unsubscribe(client, key)
                result.pop("snapshot", None)
                ack(result)
                continue
            if key in client.subs:
                error("Already subscribed", symbol)
                continue
            missing = symbol not in self.session.channels.get(channel, ())
            ack(result, [f"this replay session has no {channel} data for {symbol}"] if missing else None)
            self._subscribe(client, key, snapshot)

    # -- v1 requests ---------------------------------------------------------------------------

    def _request_v1(self, client: _Client, message: str) -> None:
        try:
            req = json.loads(message, parse_float=Decimal)
        except json.JSONDecodeError:
            req = None
        if not isinstance(req, dict) or not isinstance(req.get("event"), str):
            client.push(dumps_exact({"errorMessage": "Malformed request", "event": "error"}))
            return
        event, reqid = req["event"], req.get("reqid")
        if event == "ping":
            client.push(feed.v1_pong(reqid))
        elif event in ("subscribe", "unsubscribe"):
            self._subscription_v1(client, event, req, reqid)
        else:
            doc = {"errorMessage": "Unsupported event", "event": "error", "reqid": reqid}
            client.push(dumps_exact({k: v for k, v in doc.items() if v is not None}))

    def _subscription_v1(self, client: _Client, event: str, req: dict[str, Any], reqid: Any) -> None:
        sub = req.get("subscription")
        pairs = req.get("pair")
        shown = dict(sub) if isinstance(sub, dict) else {}

        def status(text: str, pair: str | None = None) -> None:
            client.push(feed.v1_subscription_status("error", shown, pair=pair, reqid=reqid, error=text))

        if not isinstance(sub, dict) or not isinstance(sub.get("name"), str):
            return status("Malformed request")
        name = sub["name"]
        if name not in V1_REPLAYED:
            return status("Subscription name invalid")
        if not isinstance(pairs, list) or not pairs or not all(isinstance(p, str) for p in pairs):
            return status("Pair field must be an array")
        depth = int(sub.get("depth", 10)) if name == "book" else None
        interval = int(sub.get("interval", 1)) if name == "ohlc" else None
        if depth is not None and depth not in DEPTHS:
            return status("Subscription depth not supported")
        if interval is not None and interval not in INTERVALS:
            return status("Subscription ohlc interval not supported")
        channel_name = f"book-{depth}" if depth else f"ohlc-{interval}" if interval else name
        for pair in pairs:
            key: tuple[Any, ...] = ("book", pair, depth) if depth else ("ohlc", pair, interval) if interval else (name, pair)
            if pair not in self.symbols:
                status("Currency pair not supported", pair)
                continue
            if event == "unsubscribe" and key not in client.subs:
                status("Subscription Not Found", pair)
                continue
            if event == "subscribe" and key in client.subs:
                status("Already subscribed", pair)
                continue
            ack_sub = {"name": name, **({"depth": depth} if depth else {}), **({"interval": interval} if interval else {})}
            cid = self._channel_id(channel_name, pair)
            done = "subscribed" if event == "subscribe" else "unsubscribed"
            client.push(feed.v1_subscription_status(
                done, ack_sub, pair=pair, channel_id=cid, channel_name=channel_name, reqid=reqid
            ))
            if event == "subscribe":
                self._subscribe(client, key, snapshot=name in ("book", "ticker", "ohlc"))
            else:
                self._unsubscribe(client, key)

    # -- subscriptions (both versions) ------------------------------------------------------------

    def _subscribe(self, client: _Client, key: tuple[Any, ...], snapshot: bool) -> None:
        client.subs.add(key)
        channel, symbol = key[0], key[1]
        if channel == "book":
            group = self._group(symbol, key[2])
            book = self.state.book(symbol)
            if book is None:
                (group.pending if snapshot else group.members).add(client)
            else:
                if group.view is None:
                    group.view = DepthView(book, group.depth)
                if snapshot:
                    client.push(self.rebaser(self._book_snapshot(group)))
                else:
                    self._resync(group)
                group.members.add(client)
        else:
            self._subs.setdefault(key, set()).add(client)
            if snapshot:
                text = self._snapshot(key)
                if text is not None:
                    client.push(self.rebaser(text))
        if self.options.start_on == "subscribe":
            self._start_replay()

    def _unsubscribe(self, client: _Client, key: tuple[Any, ...]) -> None:
        client.subs.discard(key)
        if key[0] == "book":
            group = self._groups.get((key[1], key[2]))
            if group is not None:
                group.members.discard(client)
                group.pending.discard(client)
        else:
            self._subs.get(key, set()).discard(client)

    def _group(self, symbol: str, depth: int) -> _BookGroup:
        group = self._groups.get((symbol, depth))
        if group is None:
            recorded = self.session.depths.get(symbol)
            group = _BookGroup(symbol, depth, None, passthrough=recorded == depth)
            group.channel_id = self._channel_id(f"book-{depth}", symbol)
            self._groups[(symbol, depth)] = group
            self._by_symbol.setdefault(symbol, []).append(group)
        return group

    def _snapshot(self, key: tuple[Any, ...]) -> str | None:
        """The subscribe-time snapshot of a trade, ticker or ohlc subscription (None without data yet)."""
        channel, symbol = key[0], key[1]
        state = self.state
        if self.api == "v2":
            if channel == "ticker" and symbol in state.tickers:
                return feed.v2_data("ticker", "snapshot", [state.tickers[symbol]])
            if channel == "trade" and state.trades.get(symbol):
                return feed.v2_data("trade", "snapshot", list(state.trades[symbol]))
            if channel == "ohlc" and (symbol, key[2]) in state.candles:
                return feed.v2_data("ohlc", "snapshot", [state.candles[(symbol, key[2])]])
            return None
        if channel == "ticker" and symbol in state.tickers:
            return dumps_exact([self._channel_id("ticker", symbol), state.tickers[symbol], "ticker", symbol])
        if channel == "ohlc" and (symbol, key[2]) in state.candles:
            name = f"ohlc-{key[2]}"
            return dumps_exact([self._channel_id(name, symbol), state.candles[(symbol, key[2])], name, symbol])
        return None


class VenueWsThread:
    """:class:`KrakenWsServer` on its own event loop in a background thread (for sync callers and tests)."""

    def __init__(self, session: ReplaySession | str | Path, **kwargs: Any) -> None:
        self._args = (session, kwargs)
        self.server: KrakenWsServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None

    def start(self, timeout: float = 30.0) -> VenueWsThread:
        """Start listening; returns once the port is open (raises what start-up raised)."""
        self._thread = threading.Thread(target=self._run, name="kraken-ws-venue", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise SandboxError(f"the venue WebSocket server did not start within {timeout:.0f} s")
        if self._error is not None:
            self._thread.join()
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and join its thread."""
        if self._loop is not None and self._stop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> VenueWsThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.port

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url

    def wait_finished(self, timeout: float | None = None) -> bool:
        """Block until the session has played to its end; True if it did within ``timeout``."""
        assert self._loop is not None and self.server is not None
        future = asyncio.run_coroutine_threadsafe(self.server.wait_finished(timeout), self._loop)
        return future.result()

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        session, kwargs = self._args
        try:
            self.server = KrakenWsServer(session, **kwargs)
            await self.server.start()
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.server.stop()


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.venue.ws``: serve a session until SIGINT/SIGTERM; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m sandbox.venue.ws", description=__doc__.splitlines()[0])
    parser.add_argument("--session", required=True, type=Path, help="fixture file (fixtures/kraken_replays/*.ndjson.gz)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--speed", type=float, default=1.0, help="N times real time (default 1)")
    pace.add_argument("--max", action="store_true", help="as fast as the clients take it")
    parser.add_argument("--loop", action="store_true", help="start again at the end, timestamps rebased to now")
    parser.add_argument("--no-rebase", action="store_true", help="keep recorded timestamps even when looping")
    parser.add_argument("--start-on", choices=("subscribe", "start"), default="subscribe")
    parser.add_argument("--heartbeat", type=float, default=1.0, help="seconds between heartbeats")
    parser.add_argument("--verify", action="store_true", help="verify the recorded checksums while playing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.speed is not None and args.speed <= 0:
        parser.error("--speed must be positive")
    options = ReplayOptions(
        speed=None if args.max else args.speed, loop=args.loop, rebase=False if args.no_rebase else None,
        start_on=args.start_on, heartbeat_s=args.heartbeat, verify=args.verify,
    )
    try:
        return asyncio.run(_serve(args.session, args.host, args.port, options))
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        if exc.hint:
            print(f"next: {exc.hint}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 0


async def _serve(session: Path, host: str, port: int, options: ReplayOptions) -> int:
    server = KrakenWsServer(session, host=host, port=port, options=options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        pace = "as fast as possible" if options.speed is None else f"{options.speed:g}x real time"
        log.info("replaying %s (%s, %d frames) at %s on %s", session, server.api, len(server.session.frames), pace, server.url)
        await stop.wait()
    log.info("stopped: %s", server.stats)
    return 0


if __name__ == "__main__":
    sys.exit(main())
