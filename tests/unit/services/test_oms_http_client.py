"""The OMS's pooled HTTP client against in-process loopback servers: answers, timeouts, keep-alive."""

from __future__ import annotations

import asyncio
import time

import pytest

from sandbox.services.oms.http_client import HttpError, HttpPool

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{\"ok\":true}"


async def serve(answer: bool) -> tuple[asyncio.base_events.Server, int, list[int]]:
    """A server that answers every request (or never does); counts connections."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                if answer:
                    writer.write(ANSWER)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


def test_answers_reuse_one_keep_alive_connection() -> None:
    async def go() -> None:
        server, port, connections = await serve(answer=True)
        pool = HttpPool(f"http://127.0.0.1:{port}", timeout=2)
        try:
            for _ in range(3):
                resp = await pool.request("POST", "/x", body=b"{}", headers={"Content-Type": "application/json"})
                assert (resp.status, resp.body, resp.headers["content-type"]) == (200, b'{"ok":true}',
                                                                                  "application/json")
            assert len(connections) == 1
        finally:
            await pool.aclose()
            server.close()

    asyncio.run(go())


def test_a_silent_server_times_out_as_sent_and_the_connection_is_dropped() -> None:
    async def go() -> None:
        server, port, connections = await serve(answer=False)
        pool = HttpPool(f"http://127.0.0.1:{port}", timeout=5)
        try:
            started = time.monotonic()
            with pytest.raises(HttpError) as caught:
                await asyncio.wait_for(pool.request("POST", "/x", body=b"{}", timeout=0.2), 3)
            assert 0.15 < time.monotonic() - started < 2
            assert caught.value.sent is True, "the request may have arrived: not blindly repeatable"
            assert "no response within 0.2 s" in str(caught.value)
            with pytest.raises(HttpError):
                await asyncio.wait_for(pool.request("GET", "/y", timeout=0.2), 3)
            assert len(connections) == 2, "a timed-out connection is never reused"
        finally:
            await pool.aclose()
            server.close()

    asyncio.run(go())


def test_headers_are_collected_only_when_asked_for() -> None:
    async def go() -> None:
        server, port, connections = await serve(answer=True)
        bare = HttpPool(f"http://127.0.0.1:{port}", timeout=2, headers=False)
        try:
            resp = await bare.request("GET", "/x")
            assert (resp.status, resp.body, resp.headers) == (200, b'{"ok":true}', {})
            resp = await bare.request("GET", "/x")
            assert resp.body == b'{"ok":true}'
            assert len(connections) == 1, "keep-alive works without header callbacks"
        finally:
            await bare.aclose()
            server.close()

    asyncio.run(go())
