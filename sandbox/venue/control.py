"""Replay control for the running venue: ``POST /admin/replay`` and ``GET /admin/replay``.

A :class:`ReplayController` owns the venue's WebSocket market-data server
(:class:`~sandbox.venue.ws.KrakenWsServer`) on one port and replaces it when
asked to replay another session, so one long-running venue process can play
any fixture at any pace.  Connected clients are disconnected when the session
changes (a new session is a new feed); a Kraken client such as the ingest
reconnects and subscribes again.

Endpoints (a FastAPI router, :meth:`ReplayController.router`):

``POST /admin/replay``
    ``{"session": NAME or PATH, "speed": 1.0 | "max": true, "loop": false,
    "symbols": [...], "start": "subscribe" | "now" | "manual", "rebase": null,
    "verify": false}``:
    load the session (a name in ``fixtures/kraken_replays`` or a file path on
    the venue's machine) and serve it on the WebSocket port.  ``start``: play
    from the first data subscription (default), at once, or on ``POST
    /admin/replay/start``.  ``symbols`` must all be in the session (the rest of
    the session still plays to whoever subscribes to it).  400 for bad input,
    404 for an unknown session, 422 for a fixture that cannot be read (its
    ``file:line`` problems listed).
``POST /admin/replay/start``
    Start a session loaded with ``"start": "manual"``.
``GET /admin/replay``
    The replay: session, options, state (``waiting``, ``playing``,
    ``finished``), the server's counters, and per client connection the
    frames sent and the epoch-ns times of the first and last.
``GET /admin/replay/sends?conn=ID``
    The send time (epoch ns) of every frame sent on connection ``ID`` (the
    ``connection_id`` of its status greeting), in order: frame ``n`` of the
    connection was handed to the socket at ``send_ns[n - 1]``.  This is the
    "simulator send" end of the end-to-end latency the replay command reports.

Wiring into the venue process (one asyncio loop)::

    controller = ReplayController(host, ws_port, default_session=...)
    app.include_router(controller.router())
    # in the app's lifespan:
    await controller.start()   # serves the default session, if any
    ...
    await controller.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
import uuid
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.venue.ws import KrakenWsServer, ReplayOptions

log = logging.getLogger("sandbox.venue.control")

#: The project's shipped sessions.
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kraken_replays"
#: Send times kept per connection (8 bytes each).
SEND_TIMES_CAP = 4_000_000
#: Connections remembered (closed ones are forgotten oldest first).
CONNECTIONS_KEPT = 64
SUFFIXES = ("", ".ndjson.gz", ".ndjson", ".jsonl.gz", ".jsonl")


class ReplayRequestError(ValueError):
    """A replay request that cannot be served; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problems = problems or []


# -- send times ------------------------------------------------------------------------------


@dataclass
class ConnectionLog:
    """The frames sent on one client connection, with the time each was handed to the socket."""

    serial: int
    opened_ns: int = field(default_factory=time.time_ns)
    #: the ``connection_id`` of the status greeting (the connection's first frame)
    conn_id: int | None = None
    frames: int = 0
    closed_ns: int | None = None
    send_ns: array = field(default_factory=lambda: array("q"))

    def stamp(self, message: Any) -> None:
        """Count one frame about to be written and keep its send time."""
        now = time.time_ns()
        self.frames += 1
        if self.frames == 1:
            self.conn_id = _connection_id(message.decode() if isinstance(message, bytes) else message)
        if len(self.send_ns) < SEND_TIMES_CAP:
            self.send_ns.append(now)

    def stamp_batch(self, messages: list[Any]) -> None:
        """Count frames written to the socket in one go, all with the same send time."""
        if not messages:
            return
        now = time.time_ns()
        if self.frames == 0:
            first = messages[0]
            self.conn_id = _connection_id(first.decode() if isinstance(first, bytes) else first)
        self.frames += len(messages)
        room = SEND_TIMES_CAP - len(self.send_ns)
        if room > 0:
            self.send_ns.extend([now] * min(room, len(messages)))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no send times)."""
        return {
            "conn": self.conn_id,
            "serial": self.serial,
            "frames_sent": self.frames,
            "opened_ns": self.opened_ns,
            "closed_ns": self.closed_ns,
            "first_send_ns": self.send_ns[0] if self.send_ns else None,
            "last_send_ns": self.send_ns[-1] if self.send_ns else None,
        }


def _connection_id(message: Any) -> int | None:
    """The connection id of a v2 ``status`` or v1 ``systemStatus`` greeting."""
    try:
        doc = json.loads(message)
    except (TypeError, ValueError):
        return None
    if isinstance(doc, dict):
        if isinstance(doc.get("connectionID"), int):
            return doc["connectionID"]
        for item in doc.get("data") or ():
            if isinstance(item, dict) and isinstance(item.get("connection_id"), int):
                return item["connection_id"]
    return None


class _TimedProtocol:
    """The connection's protocol object, stamping each text frame as it is encoded for the socket.

    The server writes queued frames in batches straight through the protocol
    (``send_text`` then one transport write), not through ``send``.
    """

    __slots__ = ("_protocol", "_log")

    def __init__(self, protocol: Any, conn_log: ConnectionLog) -> None:
        self._protocol = protocol
        self._log = conn_log

    def send_text(self, data: Any, *args: Any, **kwargs: Any) -> Any:
        self._log.stamp(data)
        return self._protocol.send_text(data, *args, **kwargs)

    def stamp_batch(self, texts: list[Any]) -> None:
        """Stamp frames the server writes itself, in one socket write (see ``sandbox.venue.ws._send_batch``)."""
        self._log.stamp_batch(texts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._protocol, name)


class _TimedConnection:
    """A server connection whose text frames are stamped when sent; everything else passes through.

    Both ways the server sends are covered: ``send`` (one frame) and the
    protocol's ``send_text`` (batches written in one go).  Stamps are taken
    when the frame is handed to the transport, so they are the venue's send times.
    """

    __slots__ = ("_ws", "_log", "_protocol")

    def __init__(self, ws: Any, conn_log: ConnectionLog) -> None:
        self._ws = ws
        self._log = conn_log
        self._protocol = _TimedProtocol(ws.protocol, conn_log) if hasattr(ws, "protocol") else None

    async def send(self, message: Any, *args: Any, **kwargs: Any) -> None:
        # websockets hands the frame to the transport before it waits for the buffer to drain.
        self._log.stamp(message)
        await self._ws.send(message, *args, **kwargs)

    @property
    def protocol(self) -> Any:
        return self._protocol if self._protocol is not None else self._ws.protocol

    def __aiter__(self) -> Any:
        return self._ws.__aiter__()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ws, name)


class TimedKrakenWsServer(KrakenWsServer):
    """:class:`KrakenWsServer` that records when every frame was sent on every connection."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: dict[int, ConnectionLog] = {}
        self._serials = itertools.count(1)

    async def _handle(self, ws: Any) -> None:
        conn_log = ConnectionLog(next(self._serials))
        self.connections[conn_log.serial] = conn_log
        closed = [s for s, c in self.connections.items() if c.closed_ns is not None]
        for serial in closed[: max(0, len(self.connections) - CONNECTIONS_KEPT)]:
            del self.connections[serial]
        try:
            await super()._handle(_TimedConnection(ws, conn_log))
        finally:
            conn_log.closed_ns = time.time_ns()

    def connection_summaries(self) -> list[dict[str, Any]]:
        """Each remembered connection, with the frames still queued in the venue for it."""
        live: dict[int, Any] = {}
        for client in list(getattr(self, "_clients", ())):
            conn_log = getattr(client.ws, "_log", None)
            if conn_log is not None:
                live[conn_log.serial] = client
        out = []
        for serial, c in self.connections.items():
            client = live.get(serial)
            summary = c.as_dict()
            # The server's own count is authoritative; the stamps must match it for latencies to join.
            summary["stamped"] = c.frames
            if client is not None and isinstance(getattr(client, "sent", None), int):
                summary["frames_sent"] = client.sent
            summary["queued"] = len(client.outbox) if client is not None else 0
            out.append(summary)
        return out

    def start_now(self) -> None:
        """Start the replay (for sessions loaded with ``start="manual"``)."""
        start = getattr(super(), "start_replay", None) or self._start_replay
        start()


# -- the controller --------------------------------------------------------------------------


@dataclass
class ReplayInfo:
    """The replay being served."""

    id: str
    session: str
    api: str
    speed: float | None
    loop: bool
    start: str
    symbols: list[str]
    channels: dict[str, list[str]]
    depths: dict[str, int]
    frames: int
    duration_s: float
    loaded_at: float = field(default_factory=time.time)


class ReplayController:
    """Serves one session at a time on the venue's WebSocket port and swaps it on request."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        fixtures_dir: Path = FIXTURES,
        default_session: str | Path | None = None,
        default_options: ReplayOptions | None = None,
        extra_symbols: Iterable[str] | None = None,
        frame_listeners: Iterable[Callable[[Any, Any], None]] = (),
    ) -> None:
        self.frame_listeners = list(frame_listeners)
        self.host = host
        self.port = port
        self.fixtures_dir = Path(fixtures_dir)
        self.default_session = default_session
        self.default_options = default_options or ReplayOptions(loop=True)
        self._extra = list(extra_symbols) if extra_symbols is not None else None
        self.server: TimedKrakenWsServer | None = None
        self.info: ReplayInfo | None = None
        self._lock = asyncio.Lock()

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Serve the default session, if one is configured."""
        if self.default_session is not None:
            await self.load(str(self.default_session), self.default_options)

    async def stop(self) -> None:
        """Stop the WebSocket server."""
        async with self._lock:
            await self._stop_server()

    async def _stop_server(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            await server.stop()

    # ---- sessions ---------------------------------------------------------------------------

    def resolve(self, session: str) -> Path:
        """The fixture file of ``session``: a name in the fixtures directory, or a path."""
        if not session or "\0" in session:
            raise ReplayRequestError(400, "session must be a fixture name or a file path")
        candidates = [Path(session)] if ("/" in session or session.endswith((".gz", ".ndjson", ".jsonl"))) else []
        candidates += [self.fixtures_dir / f"{session}{suffix}" for suffix in SUFFIXES]
        for path in candidates:
            if path.is_file():
                return path.resolve()
        names = sorted({p.name.split(".")[0] for p in self.fixtures_dir.glob("*.ndjson*")}) if self.fixtures_dir.is_dir() else []
        raise ReplayRequestError(404, f"no session {session!r}" + (f"; shipped: {', '.join(names)}" if names else ""))

    def extra_symbols(self, api: str) -> set[str]:
        """Symbols acknowledged beyond the session's own: those of every shipped session of ``api``.

        The ingest subscribes to the shipped sessions' symbols by default; the
        venue acknowledges them (with a "no data" warning) whichever session plays.
        """
        if self._extra is not None:
            return set(self._extra)
        found: set[str] = set()
        if self.fixtures_dir.is_dir():
            from sandbox.replay.fixture import FixtureError, read_session

            for path in self.fixtures_dir.glob("*.ndjson*"):
                with contextlib.suppress(FixtureError, OSError, ValueError):
                    session = read_session(path)
                    if session.has_header and session.manifest.api == api:
                        found.update(session.manifest.symbols)
        return found

    async def load(self, session: str, options: ReplayOptions, symbols: list[str] | None = None) -> ReplayInfo:
        """Replace the served session by ``session`` played with ``options``."""
        from sandbox.replay.fixture import FixtureError
        from sandbox.replay.player import ReplaySession

        path = self.resolve(session)
        try:
            replay = await asyncio.to_thread(ReplaySession.load, path)
        except FixtureError as exc:
            raise ReplayRequestError(422, str(exc), list(exc.problems)) from exc
        unknown = sorted(set(symbols or ()) - replay.symbols)
        if unknown:
            raise ReplayRequestError(
                400, f"symbols not in {path.name}: {', '.join(unknown)} (it has {', '.join(sorted(replay.symbols))})"
            )
        extra = await asyncio.to_thread(self.extra_symbols, replay.api)
        async with self._lock:
            await self._stop_server()
            server = TimedKrakenWsServer(
                replay, host=self.host, port=self.port, options=options, extra_symbols=extra,
                frame_listeners=self.frame_listeners,
            )
            await server.start()
            self.server = server
            self.info = ReplayInfo(
                id=uuid.uuid4().hex[:12],
                session=str(path),
                api=replay.api,
                speed=options.speed,
                loop=options.loop,
                start=options.start_on,
                symbols=sorted(symbols or replay.symbols),
                channels={c: sorted(s) for c, s in sorted(replay.channels.items())},
                depths=dict(sorted(replay.depths.items())),
                frames=len(replay.frames),
                duration_s=round(replay.end - replay.start, 6),
            )
        log.info("serving %s (%s, %d frames) on ws://%s:%d", path.name, replay.api, len(replay.frames), self.host, server.port)
        return self.info

    def play(self) -> None:
        """Start the loaded session now."""
        if self.server is None:
            raise ReplayRequestError(409, "no session loaded: POST /admin/replay first")
        self.server.start_now()

    # ---- reports ------------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """What ``GET /admin/replay`` answers."""
        server, info = self.server, self.info
        if server is None or info is None:
            return {"state": "idle", "replay": None, "ws_port": self.port}
        stats = server.stats
        state = "finished" if stats.finished_at is not None else "playing" if stats.started_at is not None else "waiting"
        return {
            "state": state,
            "ws_port": server.port,
            "ws_path": "/v2" if info.api == "v2" else "/",
            "replay": info.__dict__,
            "stats": dict(stats.__dict__),
            "connections": server.connection_summaries(),
        }

    def sends(self, conn: int) -> dict[str, Any]:
        """Send times of connection ``conn`` (its ``connection_id``)."""
        if self.server is not None:
            for c in self.server.connections.values():
                if c.conn_id == conn:
                    return {"conn": conn, "frames_sent": c.frames, "send_ns": c.send_ns.tolist()}
        raise ReplayRequestError(404, f"no connection {conn} in the current replay")

    # ---- HTTP ---------------------------------------------------------------------------------

    def router(self) -> Any:
        """The FastAPI router with the ``/admin/replay`` endpoints."""
        from fastapi import APIRouter, Body
        from fastapi.responses import JSONResponse

        router = APIRouter(prefix="/admin/replay", tags=["replay control"])

        def failure(exc: ReplayRequestError) -> JSONResponse:
            return JSONResponse({"error": str(exc), "problems": exc.problems}, status_code=exc.status)

        @router.post("")
        async def post_replay(body: dict[str, Any] = Body(...)) -> Any:  # noqa: B008 - FastAPI's idiom
            """Load and serve a session (see the module docstring for the body)."""
            try:
                session, options, symbols = parse_request(body)
                info = await self.load(session, options, symbols)
            except ReplayRequestError as exc:
                return failure(exc)
            return {"replay": info.__dict__, **{k: v for k, v in self.status().items() if k != "replay"}}

        @router.post("/start")
        async def post_start() -> Any:
            """Start a session loaded with ``start: manual``."""
            try:
                self.play()
            except ReplayRequestError as exc:
                return failure(exc)
            return self.status()

        @router.get("")
        async def get_replay() -> Any:
            """The replay's state and counters."""
            return self.status()

        @router.get("/sends")
        async def get_sends(conn: int) -> Any:
            """Send times of one connection."""
            try:
                return self.sends(conn)
            except ReplayRequestError as exc:
                return failure(exc)

        return router


def parse_request(body: Any) -> tuple[str, ReplayOptions, list[str] | None]:
    """Validate a ``POST /admin/replay`` body into ``(session, options, symbols)``."""
    if not isinstance(body, dict):
        raise ReplayRequestError(400, "body must be a JSON object")
    session = body.get("session")
    if not isinstance(session, str) or not session:
        raise ReplayRequestError(400, "session is required (a fixture name or path)")
    speed = body.get("speed", 1.0)
    if body.get("max"):
        speed = None
    elif isinstance(speed, bool) or not isinstance(speed, int | float) or speed <= 0:
        raise ReplayRequestError(400, "speed must be a positive number (or max: true)")
    start = body.get("start", "subscribe")
    if start not in ("subscribe", "now", "manual"):
        raise ReplayRequestError(400, "start must be subscribe, now or manual")
    symbols = body.get("symbols")
    if symbols is not None and (not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols)):
        raise ReplayRequestError(400, "symbols must be a list of symbols")
    rebase = body.get("rebase")
    if rebase is not None and not isinstance(rebase, bool):
        raise ReplayRequestError(400, "rebase must be true, false or null")
    verify = body.get("verify", False)
    if not isinstance(verify, bool):
        raise ReplayRequestError(400, "verify must be true or false")
    options = ReplayOptions(
        speed=None if speed is None else float(speed),
        loop=bool(body.get("loop", False)),
        rebase=rebase,
        start_on={"now": "start", "subscribe": "subscribe", "manual": "manual"}[start],
    )
    if verify and hasattr(options, "verify"):
        options.verify = True
    return session, options, symbols or None


# -- a stand-alone venue feed (tests, benchmarks, and the reference for wiring) ---------------


def create_app(controller: ReplayController) -> Any:
    """A FastAPI app serving only ``/healthz`` and the replay control, starting and stopping ``controller``."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        await controller.start()
        try:
            yield
        finally:
            await controller.stop()

    app = FastAPI(title="kraken-venue replay control", lifespan=lifespan)
    app.include_router(controller.router())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main(argv: list[str] | None = None) -> int:
    """``python -m sandbox.venue.control``: the venue's market-data feed with replay control, no trading.

    REST (``/healthz``, ``/admin/replay``) on ``--port`` (default ``AETHER_PORT``
    or 8080), the Kraken WebSocket on ``--ws-port`` (``AETHER_WS_PORT`` or 8081).
    """
    import argparse
    import os

    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m sandbox.venue.control", description=main.__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("AETHER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("AETHER_PORT", "8080")))
    parser.add_argument("--ws-port", type=int, default=int(os.environ.get("AETHER_WS_PORT", "8081")))
    parser.add_argument("--session", help="serve this session from the start (a shipped name or a path)")
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--max", action="store_true")
    parser.add_argument("--loop", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    options = ReplayOptions(speed=None if args.max else args.speed, loop=args.loop)
    controller = ReplayController(args.host, args.ws_port, default_session=args.session, default_options=options)
    uvicorn.run(create_app(controller), host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
