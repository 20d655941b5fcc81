"""The ingest's WebSocket client: picows, frames handed to the feed synchronously as they are parsed.

picows parses WebSocket frames in compiled code and calls
:meth:`_Listener.on_ws_frame` for each, straight from the transport's
``data_received``: no task, future or queue per message, which is what the
asyncio client of ``websockets`` costs (measured on this project's replay:
about 4 us of CPU per frame against 0.6 us, see docs/ingest.md).  Flow
control is the socket's own: while the feed is busy it does not read, so TCP
holds the sender back.

:func:`connect` opens a connection and returns a :class:`WsConnection`, which
offers what the feed needs: ``send`` (text), ``close`` (with a close
handshake bounded in time) and ``wait_closed``.  Fragmented messages are
reassembled; WebSocket pings are answered by picows itself; a close frame from
the server is answered and ends the connection.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSInvalidURL,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

#: What a failed connect or a broken connection raises, besides OSError and TimeoutError.
ConnectErrors = (WSError,)
InvalidURL = WSInvalidURL

OnMessage = Callable[[Any, int], None]


class _Listener(WSListener):  # type: ignore[misc] - picows' Cython base class
    """Hands every complete text (or binary) message to ``on_message(payload, recv_ns)``."""

    def __init__(self, on_message: OnMessage) -> None:
        super().__init__()
        self.on_message = on_message
        self.fragments: list[bytes] | None = None
        self.fragment_type: WSMsgType | None = None
        self.peer_closed = asyncio.Event()
        self.close_code: int | None = None

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT and frame.fin:
            self.on_message(frame.get_payload_as_utf8_text(), time.time_ns())
        elif kind is WSMsgType.TEXT or kind is WSMsgType.BINARY or kind is WSMsgType.CONTINUATION:
            self._fragment(kind, frame)
        elif kind is WSMsgType.CLOSE:
            self.close_code = frame.get_close_code()
            self.peer_closed.set()
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def _fragment(self, kind: WSMsgType, frame: WSFrame) -> None:
        if kind is not WSMsgType.CONTINUATION:
            if frame.fin:  # a whole binary message
                self.on_message(frame.get_payload_as_bytes(), time.time_ns())
                return
            self.fragments, self.fragment_type = [frame.get_payload_as_bytes()], kind
            return
        if self.fragments is None:
            return  # a continuation of nothing: ignored, like a stray frame
        self.fragments.append(frame.get_payload_as_bytes())
        if frame.fin:
            payload = b"".join(self.fragments)
            text = self.fragment_type is WSMsgType.TEXT
            self.fragments = self.fragment_type = None
            self.on_message(payload.decode("utf-8") if text else payload, time.time_ns())

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.peer_closed.set()


class WsConnection:
    """One open connection: ``send`` text, ``close``, ``wait_closed``."""

    def __init__(self, transport: WSTransport, listener: _Listener) -> None:
        self.transport = transport
        self.listener = listener

    @property
    def closed(self) -> bool:
        return bool(self.transport.is_disconnected)

    def send_now(self, text: str) -> None:
        """Queue ``text`` on the socket at once (no waiting: requests are small)."""
        self.transport.send(WSMsgType.TEXT, text.encode())

    async def send(self, text: str) -> None:
        """Send one text message."""
        self.send_now(text)

    async def close(self, code: int = 1000, reason: str = "", timeout: float = 2.0) -> None:
        """Close handshake: our close frame, the peer's answer (at most ``timeout``), then the socket."""
        transport = self.transport
        if transport.is_disconnected:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode()[:120])
        try:
            await asyncio.wait_for(self.listener.peer_closed.wait(), timeout)
        except TimeoutError:
            pass
        transport.disconnect()

    async def wait_closed(self) -> None:
        """Return when the connection is gone (re-raises what a frame callback raised, if anything)."""
        await self.transport.wait_disconnected()


async def connect(url: str, on_message: OnMessage, *, open_timeout: float = 10.0, max_size: int = 16 * 2**20) -> WsConnection:
    """Open a WebSocket to ``url``; every message goes to ``on_message(payload, recv_ns)`` as it arrives."""
    transport, listener = await asyncio.wait_for(
        ws_connect(
            lambda: _Listener(on_message), url, websocket_handshake_timeout=open_timeout, max_frame_size=max_size,
            enable_auto_pong=True, logger_name="ingest",
        ),
        open_timeout,
    )
    return WsConnection(transport, listener)
