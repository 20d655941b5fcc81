"""Kraken's WebSocket v2 ``executions`` channel: the OMS sees its orders and fills as they happen.

Protocol (as on ``wss://ws-auth.kraken.com/v2``): on connect the venue sends
the ``status`` greeting; the client subscribes with the token from
``GetWebSocketsToken``::

    {"method": "subscribe", "params": {"channel": "executions", "token": "...",
     "snap_orders": true, "snap_trades": false, "order_status": true}, "req_id": 1}

and receives the acknowledgement, a ``snapshot`` (open orders, and with
``snap_trades`` the last 50 fills), then an ``update`` for every order event:
``pending_new``, ``new``, ``trade`` (one per fill: ``last_qty``,
``last_price``, ``liquidity_ind`` ``m``/``t``, ``fees``), ``filled``,
``canceled`` (with ``cancel_reason``) and ``expired``.  Every message carries
a per-connection ``sequence``.  ``ping`` is answered with ``pong``; a
heartbeat goes out every second while subscribed.  An unknown or expired
token fails the subscription with ``ESession:Invalid session``.

The channel runs on whatever carries the connection:

* :func:`websockets_handler` - a handler for a ``websockets`` server, e.g. the
  venue's market-data server routing the private path to it;
* :func:`websocket_router` - a FastAPI route (``/ws-auth/v2`` by default) on the
  venue's REST port;
* :class:`ExecutionsWsServer` - a stand-alone server on its own port.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import random
import time
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from starlette.websockets import WebSocket

from sandbox.replay import feed
from sandbox.replay.protocol import dumps_exact, format_rfc3339
from sandbox.venue.trading import views
from sandbox.venue.trading.errors import INVALID_SESSION
from sandbox.venue.trading.orders import Order
from sandbox.venue.trading.ratelimit import LIMITS

if TYPE_CHECKING:
    from sandbox.venue.trading.engine import EngineEvent
    from sandbox.venue.trading.venue import TradingVenue

log = logging.getLogger("sandbox.venue.trading.ws")

#: where the private endpoint is served (Kraken: a separate host, ``ws-auth.kraken.com/v2``)
PRIVATE_WS_PATH = "/ws-auth/v2"
SNAPSHOT_TRADES = 50
ZERO = Decimal(0)


class Transport(Protocol):
    """What a session needs from a WebSocket connection."""

    async def send(self, text: str) -> None: ...
    async def recv(self) -> str | None: ...
    async def close(self, code: int = 1000, reason: str = "") -> None: ...
    def abort(self) -> bool: ...


class _WebsocketsTransport:
    """A ``websockets`` server connection."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def send(self, text: str) -> None:
        await self.ws.send(text)

    async def recv(self) -> str | None:
        from websockets.exceptions import ConnectionClosed

        try:
            message = await self.ws.recv()
        except ConnectionClosed:
            return None
        return message.decode("utf-8", "replace") if isinstance(message, bytes) else message

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code, reason)

    def abort(self) -> bool:
        transport = getattr(self.ws, "transport", None)
        if transport is None:
            return False
        transport.abort()
        return True


class _StarletteTransport:
    """A Starlette/FastAPI ``WebSocket`` (served by uvicorn)."""

    def __init__(self, websocket: Any) -> None:
        self.websocket = websocket

    async def send(self, text: str) -> None:
        await self.websocket.send_text(text)

    async def recv(self) -> str | None:
        message = await self.websocket.receive()
        if message["type"] == "websocket.disconnect":
            return None
        return message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.websocket.close(code, reason)

    def abort(self) -> bool:
        # uvicorn's receive (and send, unless wrapped) is a bound method of its protocol object,
        # which owns the socket
        for channel in ("_receive", "_send"):
            protocol = getattr(getattr(self.websocket, channel, None), "__self__", None)
            transport = getattr(protocol, "transport", None)
            if transport is not None and hasattr(transport, "abort"):
                transport.abort()
                return True
        return False


class ExecutionsSession:
    """One connection to the private endpoint."""

    _ids = itertools.count(1)

    def __init__(self, hub: ExecutionsHub, transport: Transport) -> None:
        self.hub = hub
        self.transport = transport
        self.serial = next(self._ids)
        self.account_id: str | None = None
        self.order_status = True
        self.sequence = 0
        self.outbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.closed = False

    def push(self, text: str) -> None:
        if not self.closed:
            self.outbox.put_nowait(text)

    def push_data(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Queue an ``executions`` message with the next sequence number."""
        self.sequence += 1
        self.push(dumps_exact({"channel": "executions", "type": kind, "data": items, "sequence": self.sequence}))

    async def run(self) -> None:
        """Serve the connection until it closes."""
        writer = asyncio.create_task(self._writer())
        beat = asyncio.create_task(self._heartbeats())
        self.hub.sessions.add(self)
        venue = self.hub.venue
        self.push(feed.v2_status(self.hub.rng.getrandbits(63), system=venue.system_status))
        try:
            while True:
                message = await self.transport.recv()
                if message is None:
                    break
                self.handle(message)
        finally:
            self.closed = True
            self.hub.sessions.discard(self)
            beat.cancel()
            self.outbox.put_nowait(None)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer, 1.0)
            writer.cancel()

    async def _writer(self) -> None:
        with contextlib.suppress(Exception):
            while True:
                text = await self.outbox.get()
                if text is None:
                    return
                await self.transport.send(text)

    async def _heartbeats(self) -> None:
        while not self.closed:
            await asyncio.sleep(1.0)
            if self.account_id is not None:
                self.push(feed.V2_HEARTBEAT)

    def handle(self, message: str) -> None:
        """Answer one client message."""
        time_in = format_rfc3339(time.time())
        try:
            req = json.loads(message)
        except ValueError:
            req = None
        if not isinstance(req, dict) or not isinstance(req.get("method"), str):
            self.push(feed.v2_error("error", "Malformed request", time_in, format_rfc3339(time.time())))
            return
        method, req_id = req["method"], req.get("req_id")
        params = req.get("params") if isinstance(req.get("params"), dict) else {}

        def error(text: str) -> None:
            self.push(feed.v2_error(method, text, time_in, format_rfc3339(time.time()), req_id=req_id))

        if method == "ping":
            self.push(feed.v2_pong(time_in, format_rfc3339(time.time()), req_id=req_id))
        elif method not in ("subscribe", "unsubscribe"):
            error(f"Method {method} not supported")
        elif params.get("channel") != "executions":
            error(f"Channel {params.get('channel')} not supported by this endpoint")
        elif method == "unsubscribe":
            if self.account_id is None:
                error("Subscription Not Found")
                return
            self.account_id = None
            self.push(feed.v2_ack(method, {"channel": "executions"}, time_in, format_rfc3339(time.time()),
                                  req_id=req_id))
        else:
            self.subscribe(params, req_id, time_in, error)

    def subscribe(self, params: dict[str, Any], req_id: Any, time_in: str, error: Any) -> None:
        """Check the token, acknowledge, send the snapshot, then follow the account."""
        if self.account_id is not None:
            error("Already subscribed")
            return
        account = self.hub.venue.redeem_token(str(params.get("token") or ""))
        if account is None:
            error(INVALID_SESSION)
            return
        self.order_status = params.get("order_status", True) is not False
        result = {"channel": "executions", "maxratecount": int(LIMITS[account.tier].trading_threshold),
                  "snapshot": True}
        self.push(feed.v2_ack("subscribe", result, time_in, format_rfc3339(time.time()), req_id=req_id))
        items: list[dict[str, Any]] = []
        now = self.hub.venue.clock()
        if params.get("snap_orders", True) is not False:
            items += [views.order_item(o, "new", now, self.hub.usd) for o in account.open_orders.values()]
        if params.get("snap_trades", False) is True:
            items += [views.trade_item(f, self.hub.usd) for f in account.trades[-SNAPSHOT_TRADES:]]
        self.push_data("snapshot", items)
        self.account_id = account.id


class ExecutionsHub:
    """Every executions connection of the venue; turns engine events into updates."""

    def __init__(self, venue: TradingVenue) -> None:
        self.venue = venue
        self.sessions: set[ExecutionsSession] = set()
        self.rng = random.Random()

    def usd(self, order: Order, amount: Decimal, asset: str) -> Decimal:
        """``amount`` of ``asset`` (the order's base or quote) in USD."""
        pair, engine = order.pair, self.venue.engine
        if asset == pair.quote:
            return engine.usd_value(pair, amount)
        return engine.usd_value(pair, amount * (order.avg_price or order.price or ZERO))

    def publish(self, event: EngineEvent) -> None:
        """An engine event: send it to the sessions following the order's account."""
        targets = [s for s in self.sessions if s.account_id == event.order.account.id]
        if not targets:
            return
        now = self.venue.clock()
        if event.kind == "trade" and event.fill is not None:
            item = views.trade_item(event.fill, self.usd)
        elif event.kind == "pending_new":
            item = views.order_item(event.order, "pending_new", now, self.usd)
        else:
            item = views.status_item(event.order, event.kind, now, self.usd, event.reason)
        for session in targets:
            if event.kind == "pending_new" and not session.order_status:
                continue
            session.push_data("update", [item])

    def disconnect(self, account_id: str | None = None) -> int:
        """Drop the connections of ``account_id`` (all when ``None``) abruptly; returns how many."""
        chosen = [s for s in self.sessions if account_id is None or s.account_id == account_id]
        for session in chosen:
            session.closed = True
            if not session.transport.abort():
                asyncio.get_running_loop().create_task(session.transport.close(1011, "venue fault"))
        log.info("dropped %d executions connection(s)", len(chosen))
        return len(chosen)

    def disconnect_all(self) -> int:
        """Drop every connection (venue reset)."""
        try:
            return self.disconnect(None)
        except RuntimeError:  # no running loop: nothing can be connected
            return 0

    async def close_all(self) -> None:
        """Close every connection cleanly (venue shutdown)."""
        for session in list(self.sessions):
            session.closed = True
            with contextlib.suppress(Exception):
                await session.transport.close(1001, "venue shutting down")

    def connection_count(self) -> int:
        """Open connections (subscribed or not)."""
        return len(self.sessions)


# -- transports ---------------------------------------------------------------------------------


def websockets_handler(venue: TradingVenue) -> Any:
    """A ``websockets`` connection handler serving the executions channel (for ``serve`` or a router)."""

    async def handler(ws: Any) -> None:
        await ExecutionsSession(venue.hub, _WebsocketsTransport(ws)).run()

    return handler


def websocket_router(venue: TradingVenue, path: str = PRIVATE_WS_PATH) -> Any:
    """A FastAPI router serving the executions channel at ``path`` on the REST port."""
    from fastapi import APIRouter

    router = APIRouter()

    @router.websocket(path)
    async def executions(websocket: WebSocket) -> None:
        await websocket.accept()
        await ExecutionsSession(venue.hub, _StarletteTransport(websocket)).run()

    return router


class ExecutionsWsServer:
    """The private endpoint on its own ``websockets`` server (any path), as an async context manager."""

    def __init__(self, venue: TradingVenue, host: str = "127.0.0.1", port: int = 0) -> None:
        self.venue = venue
        self.host = host
        self.port = port
        self._server: Any = None

    async def start(self) -> int:
        """Listen; returns the port."""
        from websockets.asyncio.server import serve

        self._server = await serve(websockets_handler(self.venue), self.host, self.port, max_size=2**20)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}{PRIVATE_WS_PATH}"

    async def __aenter__(self) -> ExecutionsWsServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
