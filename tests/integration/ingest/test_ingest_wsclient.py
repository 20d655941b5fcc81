"""The ingest's WebSocket client (picows) against a real websockets server: messages, fragments, close."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from sandbox.ingest import wsclient

pytestmark = pytest.mark.integration


async def _exchange(handler: Any) -> tuple[list[Any], list[str], wsclient.WsConnection]:
    received: list[Any] = []
    heard: list[str] = []

    async def server_side(ws: ServerConnection) -> None:
        async for message in ws:
            heard.append(message)
            await handler(ws, message)

    async with serve(server_side, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await wsclient.connect(f"ws://127.0.0.1:{port}/v2", lambda payload, ns: received.append((payload, ns)))
        await conn.send('{"method":"ping"}')
        await asyncio.wait_for(conn.wait_closed(), 10)
    return received, heard, conn


def test_messages_fragments_and_the_servers_close_reach_the_feed() -> None:
    async def handler(ws: ServerConnection, message: str) -> None:
        await ws.send('{"a":0.00005100}')
        await ws.send(iter(['{"b":', "[1,", "2]}"]))  # one text message in three frames
        await ws.send(b"\x00\x01")
        await ws.close(1001, "going away")

    received, heard, conn = asyncio.run(_exchange(handler))
    assert heard == ['{"method":"ping"}']
    assert [payload for payload, _ in received] == ['{"a":0.00005100}', '{"b":[1,2]}', b"\x00\x01"]
    assert all(isinstance(ns, int) and ns > 0 for _, ns in received)
    assert conn.closed and conn.listener.close_code == 1001


def test_our_close_is_a_close_handshake() -> None:
    closed: list[int | None] = []

    async def main() -> None:
        async def server_side(ws: ServerConnection) -> None:
            async for _ in ws:
                pass
            closed.append(ws.close_code)

        async with serve(server_side, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            conn = await wsclient.connect(f"ws://127.0.0.1:{port}/", lambda *_: None)
            await conn.close(1000, "reconnecting")
            await asyncio.wait_for(conn.wait_closed(), 5)
            for _ in range(50):
                if closed:
                    break
                await asyncio.sleep(0.05)

    asyncio.run(main())
    assert closed == [1000]


def test_refused_connection_raises_oserror() -> None:
    from sandbox.infra.ports import free_port

    with pytest.raises((OSError, *wsclient.ConnectErrors)):
        asyncio.run(wsclient.connect(f"ws://127.0.0.1:{free_port()}/", lambda *_: None, open_timeout=3))
