"""The executions channel (WebSocket v2) over an in-memory transport: token, snapshot, events, faults."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest

from sandbox.venue.trading.executions_ws import ExecutionsSession

D = Decimal


class FakeTransport:
    """A WebSocket stand-in: the test feeds ``inbox``; what the venue sends lands in ``sent``."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[str | None] = asyncio.Queue()
        self.sent: list[dict] = []
        self.aborted = False

    async def send(self, text: str) -> None:
        self.sent.append(json.loads(text, parse_float=D))

    async def recv(self) -> str | None:
        return await self.inbox.get()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.inbox.put_nowait(None)

    def abort(self) -> bool:
        self.aborted = True
        self.inbox.put_nowait(None)
        return True

    def executions(self) -> list[dict]:
        return [m for m in self.sent if m.get("channel") == "executions"]

    def items(self) -> list[dict]:
        return [item for m in self.executions() if m["type"] == "update" for item in m["data"]]


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


@pytest.fixture
def run(venue):
    """``run(scenario)``: run ``async scenario(connect)`` where ``connect()`` opens a session."""

    def runner(scenario):
        async def main():
            tasks = []

            async def connect() -> FakeTransport:
                transport = FakeTransport()
                tasks.append(asyncio.create_task(ExecutionsSession(venue.hub, transport).run()))
                await settle()
                return transport

            try:
                await scenario(connect)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run(main())

    return runner


def subscribe(transport: FakeTransport, token: str, **params) -> None:
    transport.inbox.put_nowait(json.dumps({"method": "subscribe", "req_id": 7,
                                           "params": {"channel": "executions", "token": token, **params}}))


def test_subscribe_acknowledges_then_sends_a_snapshot_and_updates_as_orders_fill(run, venue, trader, market) -> None:
    market.book([("29990.0", "1.0")], [("30010.0", "0.5"), ("30020.0", "1.0")])
    t = trader()
    resting = t.buy("0.1", "29000.0", userref=9)
    token = venue.issue_token(t.key)["token"]

    async def scenario(connect):
        ws = await connect()
        assert ws.sent[0]["channel"] == "status" and ws.sent[0]["data"][0]["api_version"] == "v2"
        subscribe(ws, token, snap_trades=True)
        await settle()
        ack = ws.sent[1]
        assert ack["method"] == "subscribe" and ack["success"] is True and ack["req_id"] == 7
        assert ack["result"]["channel"] == "executions" and ack["result"]["maxratecount"] == 125
        snapshot = ws.sent[2]
        assert snapshot["type"] == "snapshot" and snapshot["sequence"] == 1
        assert [i["order_id"] for i in snapshot["data"]] == [resting]
        assert snapshot["data"][0]["order_status"] == "new" and snapshot["data"][0]["limit_price"] == D("29000.0")

        txid = t.buy("0.7")
        await settle()
        items = ws.items()
        assert [i["exec_type"] for i in items] == ["pending_new", "new", "trade", "trade", "filled"]
        assert all(i["order_id"] == txid and i["symbol"] == "BTC/USD" for i in items)
        first, second = items[2], items[3]
        assert (first["last_qty"], first["last_price"], first["liquidity_ind"]) == (D("0.50000000"), D("30010.0"), "t")
        assert first["order_status"] == "partially_filled" and second["order_status"] == "filled"
        assert first["fees"] == [{"asset": "USD", "qty": D("39.01300")}]
        assert second["cum_qty"] == D("0.70000000") and second["cum_cost"] == D("21009.00000")
        assert [m["sequence"] for m in ws.executions()] == list(range(1, 7))

        t("CancelOrder", txid=resting)
        await settle()
        cancelled = ws.items()[-1]
        assert cancelled["exec_type"] == "canceled" and cancelled["cancel_reason"] == "User requested"
        assert cancelled["order_userref"] == 9

    run(scenario)


def test_resting_fills_arrive_as_maker_trades(run, venue, trader, market) -> None:
    market.book([("29990.0", "1.0")], [("30010.0", "0.5")])
    t = trader()
    txid = t.sell("0.3", "30010.0")
    token = venue.issue_token(t.key)["token"]

    async def scenario(connect):
        ws = await connect()
        subscribe(ws, token)
        await settle()
        market.trade("30010.0", "0.6", "buy")  # 0.5 ahead, then 0.1 for us
        await settle()
        trade = ws.items()[-1]
        assert trade["exec_type"] == "trade" and trade["liquidity_ind"] == "m" and trade["last_qty"] == D("0.10000000")
        assert trade["order_id"] == txid and trade["side"] == "sell"

    run(scenario)


def test_each_connection_sees_only_its_accounts_orders(run, venue, trader, market) -> None:
    market.book([("29990.0", "1.0")], [("30010.0", "5")])
    mine, theirs = trader(), trader()
    token = venue.issue_token(mine.key)["token"]

    async def scenario(connect):
        ws = await connect()
        subscribe(ws, token, order_status=False)
        await settle()
        theirs.buy("0.1")
        mine.buy("0.1")
        await settle()
        assert {i["order_id"] for i in ws.items()} == {o for o in mine.account.orders}
        assert "pending_new" not in [i["exec_type"] for i in ws.items()]  # order_status: false

    run(scenario)


def test_a_bad_token_is_an_invalid_session_and_a_token_expires_unused(run, venue, trader, clock) -> None:
    t = trader()
    stale = venue.issue_token(t.key)["token"]
    clock.advance(901)

    async def scenario(connect):
        ws = await connect()
        subscribe(ws, "nope")
        subscribe(ws, stale)
        ws.inbox.put_nowait(json.dumps({"method": "ping", "req_id": 3}))
        ws.inbox.put_nowait(json.dumps({"method": "subscribe", "params": {"channel": "book"}}))
        ws.inbox.put_nowait("{not json")
        await settle()
        errors = [m.get("error") for m in ws.sent[1:]]
        assert errors == ["ESession:Invalid session", "ESession:Invalid session", None,
                          "Channel book not supported by this endpoint", "Malformed request"]
        assert ws.sent[3]["method"] == "pong" and ws.sent[3]["req_id"] == 3

    run(scenario)


def test_unsubscribe_stops_updates(run, venue, trader, market) -> None:
    market.book([("29990.0", "1.0")], [("30010.0", "5")])
    t = trader()
    token = venue.issue_token(t.key)["token"]

    async def scenario(connect):
        ws = await connect()
        subscribe(ws, token)
        ws.inbox.put_nowait(json.dumps({"method": "unsubscribe", "params": {"channel": "executions"}}))
        await settle()
        t.buy("0.1")
        await settle()
        assert ws.sent[-1]["method"] == "unsubscribe" and ws.items() == []

    run(scenario)


def test_a_disconnect_fault_drops_the_accounts_connections(run, venue, trader, clock) -> None:
    a, b = trader(), trader()

    async def scenario(connect):
        ws_a, ws_b = await connect(), await connect()
        subscribe(ws_a, venue.issue_token(a.key)["token"])
        subscribe(ws_b, venue.issue_token(b.key)["token"])
        await settle()
        from sandbox.venue.trading.faults import FaultSpec

        venue.faults.add(FaultSpec(action="ws_disconnect", api_key=a.key.key, delay_s=2), clock())
        venue.tick()
        assert not ws_a.aborted
        clock.advance(2)
        venue.tick()
        await settle()
        assert ws_a.aborted and not ws_b.aborted
        assert venue.hub.connection_count() == 1

    run(scenario)
