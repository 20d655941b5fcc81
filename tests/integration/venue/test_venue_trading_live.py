"""The trading venue on loopback ports: real HTTP with signed requests, the executions WebSocket, faults.

One event loop in a background thread serves, as the venue process does,
uvicorn (public + private REST, admin, the executions channel at
``/ws-auth/v2``) and a stand-alone ``websockets`` server with the same
executions handler (what the market-data server's port will route to).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from sandbox.infra.ports import free_port
from sandbox.venue.trading.app import create_trading_app
from sandbox.venue.trading.executions_ws import ExecutionsWsServer
from sandbox.venue.trading.signing import signed_request

pytestmark = pytest.mark.integration

ASSETPAIRS = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"
D = Decimal


class VenueProcess:
    """uvicorn and a websockets server on one loop in a thread, stopped by :meth:`stop`."""

    def __init__(self) -> None:
        self.app = create_trading_app(ASSETPAIRS, seed=21)
        self.venue = self.app.state.trading
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_rest_url = f"ws://127.0.0.1:{self.port}/ws-auth/v2"
        self.ws_own_url = ""
        self._server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), name="venue-it", daemon=True)
        self.error: BaseException | None = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        own = ExecutionsWsServer(self.venue, "127.0.0.1", 0)
        serving = asyncio.create_task(self._server.serve())
        try:
            await own.start()
            self.ws_own_url = own.url
            while not self._server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.01)
            self._ready.set()
            await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self.error = exc
            self._ready.set()
        finally:
            await own.stop()
            self._server.should_exit = True
            await serving

    def start(self) -> VenueProcess:
        self._thread.start()
        if not self._ready.wait(20) or self.error:
            self.stop()
            raise RuntimeError(f"the venue did not start: {self.error}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "the venue thread did not stop"


@pytest.fixture(scope="module")
def process() -> Iterator[VenueProcess]:
    proc = VenueProcess().start()
    try:
        yield proc
    finally:
        proc.stop()


class Client:
    """A funded account talking to the venue over real HTTP."""

    nonces = itertools.count(int(time.time() * 1000))

    def __init__(self, process: VenueProcess, **account: Any) -> None:
        self.process = process
        self.http = httpx.Client(base_url=process.base_url, timeout=5)
        body = {"balances": {"ZUSD": "1000000", "XXBT": "10"}, **account}
        created = self.http.post("/admin/accounts", json=body)
        assert created.status_code == 201, created.text
        self.account_id = created.json()["account_id"]
        self.key, self.secret = created.json()["api_key"], created.json()["api_secret"]

    def raw(self, method: str, http_timeout: float = 5, **params: Any) -> httpx.Response:
        path = f"/0/private/{method}"
        headers, body = signed_request(path, params, self.key, self.secret, next(self.nonces))
        return self.http.post(path, content=body, headers=headers, timeout=http_timeout)

    def call(self, method: str, **params: Any) -> dict:
        resp = self.raw(method, **params)
        assert resp.status_code == 200
        return json.loads(resp.content, parse_float=D)

    def ok(self, method: str, **params: Any) -> Any:
        doc = self.call(method, **params)
        assert doc["error"] == [], doc
        return doc["result"]

    @contextmanager
    def executions(self, url: str) -> Iterator[ClientConnection]:
        """A subscribed executions connection (status, ack and snapshot read; ``ws.snapshot`` kept)."""
        with connect(url, open_timeout=5) as ws:
            assert json.loads(ws.recv(timeout=5))["channel"] == "status"
            token = self.ok("GetWebSocketsToken")["token"]
            ws.send(json.dumps({"method": "subscribe", "params": {"channel": "executions", "token": token}}))
            ack = json.loads(ws.recv(timeout=5))
            assert ack["success"] is True, ack
            snapshot = json.loads(ws.recv(timeout=5), parse_float=D)
            assert snapshot["type"] == "snapshot"
            ws.snapshot = snapshot  # type: ignore[attr-defined]
            yield ws

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def client(process: VenueProcess) -> Iterator[Client]:
    process.venue.reset()
    http = httpx.Client(base_url=process.base_url)
    http.put("/admin/book/XBTUSD", json={"bids": [["29990.0", "1.0"], ["29980.0", "2"]],
                                         "asks": [["30010.0", "0.5"], ["30020.0", "1.0"], ["30030.0", "5"]]})
    http.close()
    c = Client(process)
    yield c
    c.close()


def updates(ws: ClientConnection, until: str, order_id: str | None = None, timeout: float = 5) -> list[dict]:
    """Execution items received until one of ``exec_type`` ``until`` (for ``order_id``)."""
    items: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())), parse_float=D)
        if msg.get("channel") != "executions":
            continue
        items.extend(msg["data"])
        if any(i["exec_type"] == until and (order_id is None or i["order_id"] == order_id) for i in msg["data"]):
            return items
    raise AssertionError(f"no {until} within {timeout} s; got {items}")


def test_signed_requests_over_http_with_krakens_errors(client: Client) -> None:
    assert client.ok("Balance") == {"XXBT": "10.0000000000", "ZUSD": "1000000.0000"}
    path = "/0/private/Balance"
    headers, body = signed_request(path, {}, client.key, client.secret, 5)
    assert client.http.post(path, content=body, headers=headers).json() == {"error": ["EAPI:Invalid nonce"]}
    headers["API-Sign"] = headers["API-Sign"][::-1]
    assert client.http.post(path, content=body, headers=headers).json()["error"] == ["EAPI:Invalid signature"]
    assert client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="1.0",
                       volume="0.0001")["error"] == ["EOrder:Cost minimum not met"]


@pytest.mark.parametrize("where", ["rest_port", "own_port"])
def test_fills_stream_on_the_executions_channel(process: VenueProcess, client: Client, where: str) -> None:
    url = process.ws_rest_url if where == "rest_port" else process.ws_own_url
    with client.executions(url) as ws:
        txid = client.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="1.2")["txid"][0]
        items = updates(ws, "filled", txid)
        assert [i["exec_type"] for i in items] == ["pending_new", "new", "trade", "trade", "filled"]
        assert [(i["last_price"], i["last_qty"]) for i in items if i["exec_type"] == "trade"] == [
            (D("30010.0"), D("0.50000000")), (D("30020.0"), D("0.70000000"))]
        resting = client.ok("AddOrder", pair="XBTUSD", type="sell", ordertype="limit", price="30040.0",
                            volume="0.3", userref=5)["txid"][0]
        updates(ws, "new", resting)
        client.http.post("/admin/trades", json={"pair": "XBTUSD", "price": "30045.0", "qty": "1", "side": "buy"})
        maker = [i for i in updates(ws, "filled", resting) if i["exec_type"] == "trade"]
        assert maker[0]["liquidity_ind"] == "m" and maker[0]["last_price"] == D("30040.0")
    history = client.ok("TradesHistory")
    assert history["count"] == 3


def test_a_dropped_response_after_accept_is_reconciled(client: Client) -> None:
    client.http.post("/admin/faults", json={"action": "drop_after_accept", "endpoint": "AddOrder", "count": 1})
    with pytest.raises(httpx.TransportError):
        client.raw("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="29000.0", volume="0.1",
                   cl_ord_id="oms-42")
    open_ = client.ok("OpenOrders", cl_ord_id="oms-42")["open"]
    assert len(open_) == 1 and next(iter(open_.values()))["status"] == "open"
    # the retry the OMS must not make blindly: the venue refuses a second live order with that id
    assert client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="29000.0", volume="0.1",
                       cl_ord_id="oms-42")["error"] == ["EOrder:Duplicate order"]


def test_latency_beyond_the_clients_timeout_still_places_the_order(client: Client) -> None:
    client.http.post("/admin/faults", json={"action": "latency", "endpoint": "AddOrder", "latency_ms": 600,
                                            "count": 1})
    with pytest.raises(httpx.ReadTimeout):
        client.raw("AddOrder", http_timeout=0.2, pair="XBTUSD", type="buy", ordertype="limit", price="29000.0",
                   volume="0.1", userref=77)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not client.ok("OpenOrders", userref=77)["open"]:
        time.sleep(0.05)
    assert len(client.ok("OpenOrders", userref=77)["open"]) == 1


def test_a_websocket_disconnect_then_resubscribe_sees_the_open_orders(process: VenueProcess, client: Client) -> None:
    with client.executions(process.ws_rest_url) as ws:
        txid = client.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="29000.0",
                         volume="0.1")["txid"][0]
        updates(ws, "new", txid)
        client.http.post("/admin/faults", json={"action": "ws_disconnect"})
        with pytest.raises(ConnectionClosed):
            for _ in range(100):
                ws.recv(timeout=5)
    with client.executions(process.ws_own_url) as again:
        assert [i["order_id"] for i in again.snapshot["data"]] == [txid]  # type: ignore[attr-defined]


def test_status_changes_show_in_public_rest_and_refuse_orders(client: Client) -> None:
    assert client.http.put("/admin/status", json={"status": "post_only"}).status_code == 200
    assert client.http.get("/0/public/SystemStatus").json()["result"]["status"] == "post_only"
    assert client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="0.1")["error"] == [
        "EService:Market in post_only mode"]
    client.http.put("/admin/status", json={"status": "online"})


def test_the_dead_mans_switch_fires_on_the_venues_own_clock(client: Client) -> None:
    client.ok("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="29000.0", volume="0.1")
    client.ok("CancelAllOrdersAfter", timeout=1)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and client.ok("OpenOrders")["open"]:
        time.sleep(0.1)
    assert client.ok("OpenOrders")["open"] == {}
    closed = client.ok("ClosedOrders")["closed"]
    assert [o["reason"] for o in closed.values()] == ["Cancel all orders after timeout"]
