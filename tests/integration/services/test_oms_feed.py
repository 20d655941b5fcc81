"""The OMS's executions-feed connection (picows) against a loopback WebSocket server: messages reach the feed
as they arrive, a normal close returns, an abnormal close or a silent venue raise (so the feed reconnects)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from sandbox.services.oms import executions
from sandbox.services.oms.executions import ExecutionFeed

UPDATE = {"channel": "executions", "type": "update", "data": [{"exec_type": "trade", "last_qty": 0.001}]}


def feed(url: str) -> tuple[ExecutionFeed, list[Any]]:
    got: list[Any] = []
    f = ExecutionFeed(None, ws_url=url, poll_interval_s=1.0, resolve=None)  # type: ignore[arg-type]

    def on_message(raw: Any) -> None:
        f.last_message_at = time.monotonic()
        got.append(json.loads(raw))

    f._on_message = on_message  # type: ignore[method-assign]
    return f, got


def follow(handler: Callable[[ServerConnection], Awaitable[None]]) -> tuple[BaseException | None, list[Any], Any]:
    """Run one ``_follow`` against a server answering with ``handler``: (what it raised, messages, subscribe)."""
    subscribed: list[Any] = []

    async def serve_one(conn: ServerConnection) -> None:
        subscribed.append(json.loads(await conn.recv()))
        await handler(conn)

    async def main() -> tuple[BaseException | None, list[Any]]:
        async with serve(serve_one, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            f, got = feed(f"ws://127.0.0.1:{port}/v2")
            try:
                await asyncio.wait_for(f._follow("tok-1"), 10)
            except Exception as exc:  # noqa: BLE001 - the outcome under test
                return exc, got
            return None, got

    raised, got = asyncio.run(main())
    return raised, got, subscribed[0] if subscribed else None


async def answer_then(conn: ServerConnection, code: int) -> None:
    await conn.send(json.dumps({"method": "subscribe", "success": True, "req_id": 1}))
    await conn.send(json.dumps(UPDATE))
    await conn.close(code)


def test_messages_arrive_and_a_normal_close_returns() -> None:
    raised, got, sub = follow(lambda c: answer_then(c, 1000))
    assert raised is None
    assert sub["method"] == "subscribe" and sub["params"]["channel"] == "executions"
    assert sub["params"]["token"] == "tok-1" and sub["params"]["order_status"] is False
    assert got == [{"method": "subscribe", "success": True, "req_id": 1}, UPDATE]


def test_an_abnormal_close_raises_after_the_messages() -> None:
    raised, got, _ = follow(lambda c: answer_then(c, 1011))
    assert isinstance(raised, ConnectionError) and "1011" in str(raised)
    assert got[-1] == UPDATE


def test_a_silent_venue_is_a_dead_feed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executions, "SILENCE_S", 0.4)

    async def silent(conn: ServerConnection) -> None:
        await asyncio.sleep(2)

    raised, got, _ = follow(silent)
    assert isinstance(raised, TimeoutError) and "no message" in str(raised) and got == []
