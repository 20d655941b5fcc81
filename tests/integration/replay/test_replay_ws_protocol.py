"""The venue's WebSocket protocol, v2 and v1, with real websockets clients on a loopback port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from sandbox.replay.book import parse_frame
from sandbox.replay.generator import GeneratorConfig, generate_file
from sandbox.venue.ws import KrakenWsServer, ReplayOptions

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def v2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ws") / "v2.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD"], duration_s=20, seed=21), path)
    return path


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ws") / "v1.ndjson.gz"
    generate_file(GeneratorConfig(api="v1", symbols=["XBT/USD"], channels=["book", "trade", "ticker"], duration_s=20,
                                  seed=22), path)
    return path


async def next_where(ws: ClientConnection, match: Callable[[Any], bool], timeout: float = 5.0) -> Any:
    """The next message ``match`` accepts (others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        msg = parse_frame(await asyncio.wait_for(ws.recv(), max(0.01, deadline - time.monotonic())))
        if match(msg):
            return msg


def is_method(method: str) -> Callable[[Any], bool]:
    return lambda m: isinstance(m, dict) and m.get("method") == method


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_v2_greeting_subscribe_ack_snapshot_and_updates(v2_file: Path) -> None:
    async def scenario() -> None:
        async with KrakenWsServer(v2_file, options=ReplayOptions(speed=4.0)) as srv, connect(srv.url) as ws:
            status = parse_frame(await ws.recv())
            assert status["channel"] == "status" and status["data"][0]["api_version"] == "v2"
            assert status["data"][0]["system"] == "online"
            await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "book", "symbol": ["BTC/USD"], "depth": 10}, "req_id": 7}))
            ack = await next_where(ws, is_method("subscribe"))
            assert {k: ack[k] for k in ("method", "result", "success", "req_id")} == {
                "method": "subscribe", "success": True, "req_id": 7,
                "result": {"channel": "book", "depth": 10, "snapshot": True, "symbol": "BTC/USD"},
            }
            assert ack["time_in"].endswith("Z") and ack["time_out"] >= ack["time_in"]
            snap = await next_where(ws, lambda m: m.get("channel") == "book")
            assert snap["type"] == "snapshot" and len(snap["data"][0]["bids"]) == 10
            update = await next_where(ws, lambda m: m.get("channel") == "book")
            assert update["type"] == "update" and "checksum" in update["data"][0]

    run(scenario())


def test_v2_error_acks(v2_file: Path) -> None:
    async def scenario() -> None:
        async with KrakenWsServer(v2_file, options=ReplayOptions(speed=1.0)) as srv, connect(srv.url) as ws:
            async def ask(params: dict[str, Any], method: str = "subscribe") -> Any:
                await ws.send(json.dumps({"method": method, "params": params, "req_id": 3}))
                return await next_where(ws, is_method(method))

            err = await ask({"channel": "trade", "symbol": ["FOO/USD"]})
            assert {k: err[k] for k in ("error", "method", "success", "symbol", "req_id")} == {
                "error": "Currency pair not supported FOO/USD", "method": "subscribe", "success": False,
                "symbol": "FOO/USD", "req_id": 3,
            }
            assert (await ask({"channel": "candles", "symbol": ["BTC/USD"]}))["error"] == "Channel candles not supported"
            assert (await ask({"channel": "book", "symbol": ["BTC/USD"], "depth": 7}))["error"] == "Subscription depth not supported"
            assert (await ask({"channel": "ohlc", "symbol": ["BTC/USD"], "interval": 2}))["success"] is False
            assert (await ask({"channel": "trade", "symbol": ["BTC/USD"]}))["success"] is True
            assert (await ask({"channel": "trade", "symbol": ["BTC/USD"]}))["error"] == "Already subscribed"
            assert (await ask({"channel": "ticker", "symbol": ["BTC/USD"]}, "unsubscribe"))["error"] == "Subscription Not Found"
            unsub = await ask({"channel": "trade", "symbol": ["BTC/USD"]}, "unsubscribe")
            assert unsub["success"] is True and unsub["result"] == {"channel": "trade", "symbol": "BTC/USD"}
            await ws.send("{not json")
            assert (await next_where(ws, lambda m: m.get("method") == "error"))["error"] == "Malformed request"

    run(scenario())


def test_v2_ping_pong_heartbeat_and_unsubscribe_stops_data(v2_file: Path) -> None:
    async def scenario() -> None:
        async with KrakenWsServer(v2_file, options=ReplayOptions(speed=4.0, heartbeat_s=0.2)) as srv, connect(srv.url) as ws:
            await ws.send(json.dumps({"method": "ping", "req_id": 101}))
            pong = await next_where(ws, is_method("pong"))
            assert pong["req_id"] == 101 and "time_in" in pong and "time_out" in pong
            await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["ETH/USD"]}}))
            await next_where(ws, lambda m: m.get("channel") == "heartbeat", timeout=2)
            await next_where(ws, lambda m: m.get("channel") == "trade")
            await ws.send(json.dumps({"method": "unsubscribe", "params": {"channel": "trade", "symbol": ["ETH/USD"]}}))
            await next_where(ws, is_method("unsubscribe"))
            end = time.monotonic() + 1.0
            while time.monotonic() < end:
                try:
                    msg = parse_frame(await asyncio.wait_for(ws.recv(), end - time.monotonic()))
                except TimeoutError:
                    break
                assert msg.get("channel") != "trade"

    run(scenario())


def test_wrong_path_is_refused(v2_file: Path) -> None:
    async def scenario() -> None:
        async with KrakenWsServer(v2_file) as srv:
            with pytest.raises(InvalidStatus) as caught:
                async with connect(f"ws://127.0.0.1:{srv.port}/"):
                    pass
            assert caught.value.response.status_code == 404

    run(scenario())


def test_v1_greeting_subscription_status_snapshot_errors_ping(v1_file: Path) -> None:
    async def scenario() -> None:
        async with KrakenWsServer(v1_file, options=ReplayOptions(speed=4.0, heartbeat_s=0.2)) as srv:
            assert srv.url.endswith(str(srv.port))
            async with connect(f"{srv.url}/v1") as ws:
                greeting = parse_frame(await ws.recv())
                assert greeting["event"] == "systemStatus" and greeting["status"] == "online"
                await ws.send(json.dumps({"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}, "reqid": 5}))
                status = await next_where(ws, lambda m: isinstance(m, dict) and m.get("event") == "subscriptionStatus")
                assert {k: status[k] for k in ("channelName", "event", "pair", "reqid", "status", "subscription")} == {
                    "channelName": "book-10", "event": "subscriptionStatus", "pair": "XBT/USD", "reqid": 5,
                    "status": "subscribed", "subscription": {"depth": 10, "name": "book"},
                }
                snapshot = await next_where(ws, lambda m: isinstance(m, list))
                assert snapshot[0] == status["channelID"] and snapshot[-2:] == ["book-10", "XBT/USD"]
                assert len(snapshot[1]["as"]) == 10 and len(snapshot[1]["bs"]) == 10

                async def error_of(request: dict[str, Any]) -> Any:
                    await ws.send(json.dumps(request))
                    msg = await next_where(ws, lambda m: isinstance(m, dict) and m.get("status") == "error")
                    return msg["errorMessage"]

                assert await error_of({"event": "subscribe", "pair": ["XBT/EUX"], "subscription": {"name": "ticker"}}) == "Currency pair not supported"
                assert await error_of({"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "trades"}}) == "Subscription name invalid"
                assert await error_of({"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 11}}) == "Subscription depth not supported"
                assert await error_of({"event": "unsubscribe", "pair": ["XBT/USD"], "subscription": {"name": "ticker"}}) == "Subscription Not Found"
                await ws.send(json.dumps({"event": "ping", "reqid": 42}))
                assert await next_where(ws, lambda m: isinstance(m, dict) and m.get("event") == "pong") == {"event": "pong", "reqid": 42}
                await next_where(ws, lambda m: isinstance(m, dict) and m.get("event") == "heartbeat", timeout=2)

    run(scenario())
