"""risk-service runtime pieces without servers: capital cache, reload coalescing, state merges, payloads."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal as D
from typing import Any

import httpx
import pytest

from sandbox.services.risk.audit import jsonable
from sandbox.services.risk.capital import CapitalSource, parse_capital
from sandbox.services.risk.domain import EsgExclusion, KillSwitch
from sandbox.services.risk.killswitch import broadcast, subject
from sandbox.services.risk.positions import Mark, Position
from sandbox.services.risk.reload import Reloader
from sandbox.services.risk.state import RiskState
from sandbox.services.risk.store_positions import MAX_NOTIFY_BYTES, changes_payload

NOW = datetime(2026, 3, 2, 12, tzinfo=timezone.utc)


@pytest.mark.parametrize(("doc", "available", "problem"), [
    ({"strategy": "s", "allocated": "10", "reserved": "4", "available": "6", "currency": "USD"}, D("6"), None),
    ({"available": -2}, D("-2"), None),  # shrunk below reservations: nothing to spend
    ({"available_capital": 7.5}, D("7.5"), None),
    ({"available": {"amount": "3", "currency": "EUR"}}, D("3"), None),
    ({"allocated": "9"}, D("9"), None),
    ({"available": "lots"}, None, "capital_unavailable"),
    ({"available": True}, None, "capital_unavailable"),
    ({"available": "NaN"}, None, "capital_unavailable"),
    ([1, 2], None, "capital_unavailable"),
    ({}, None, "capital_unavailable"),
])
def test_parse_capital(doc: Any, available: D | None, problem: str | None) -> None:
    capital = parse_capital(doc)
    assert (capital.available, capital.problem) == (available, problem)


class FakeClient:
    """Answers like capital-allocator; counts requests."""

    def __init__(self, answers: dict[str, httpx.Response | Exception], delay: float = 0.0) -> None:
        self.answers = answers
        self.delay = delay
        self.calls: list[str] = []

    async def get(self, path: str) -> httpx.Response:
        self.calls.append(path)
        await asyncio.sleep(self.delay)
        answer = self.answers[path.split("/")[3]]
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def aclose(self) -> None:
        pass


def ok(doc: dict[str, Any]) -> httpx.Response:
    return httpx.Response(200, content=json.dumps(doc).encode())


def test_capital_source_caches_single_flights_and_classifies() -> None:
    async def scenario() -> None:
        client = FakeClient({
            "s1": ok({"available": "100.25"}), "gone": httpx.Response(404), "broken": httpx.Response(500),
            "down": httpx.ConnectError("refused"), "garbled": httpx.Response(200, content=b"<html>"),
        }, delay=0.05)
        outcomes: list[str] = []
        source = CapitalSource(client, ttl_s=60, error_ttl_s=0, timeout_s=1, on_fetch=outcomes.append)
        results = await asyncio.gather(*(source.get("s1") for _ in range(20)))
        assert {r.available for r in results} == {D("100.25")}
        assert client.calls == ["/v1/strategies/s1/capital"]  # one request for 20 concurrent checks
        await source.get("s1")
        assert len(client.calls) == 1  # cached
        assert (await source.get("gone")).problem == "capital_not_allocated"
        for name in ("broken", "down", "garbled"):
            assert (await source.get(name)).problem == "capital_unavailable"
        await source.get("down")
        assert client.calls.count("/v1/strategies/down/capital") == 2  # errors are not cached (error_ttl 0)
        assert outcomes.count("ok") == 1 and outcomes.count("not_allocated") == 1

    asyncio.run(scenario())


def test_capital_source_times_out() -> None:
    async def scenario() -> None:
        source = CapitalSource(FakeClient({"slow": ok({"available": 1})}, delay=1.0), ttl_s=5, error_ttl_s=5, timeout_s=0.05)
        capital = await source.get("slow")
        assert capital.problem == "capital_unavailable" and "TimeoutError" in capital.message

    asyncio.run(scenario())


def test_reloader_coalesces_and_covers_the_last_request() -> None:
    async def scenario() -> None:
        version = {"db": 0}
        applied: list[int] = []
        loads = 0

        async def load() -> int:
            nonlocal loads
            loads += 1
            seen = version["db"]
            await asyncio.sleep(0.01)
            return seen

        reloader = Reloader("x", load, applied.append)
        for i in range(1, 11):
            version["db"] = i
            reloader.request()
        assert await reloader.refresh(timeout=2)
        assert applied[-1] == 10
        assert loads <= 3  # ten notifications, a couple of loads

    asyncio.run(scenario())


def test_reloader_retries_until_the_database_answers() -> None:
    async def scenario() -> None:
        attempts = {"n": 0}
        errors: list[str] = []
        applied: list[str] = []

        async def load() -> str:
            attempts["n"] += 1
            if attempts["n"] < 3:
                raise OSError("connection refused")
            return "fresh"

        reloader = Reloader("x", load, applied.append, retry_s=0.01, on_error=errors.append)
        assert await reloader.refresh(timeout=2)
        assert applied == ["fresh"] and errors == ["x", "x"] and reloader.last_error is None
        await reloader.stop()

    asyncio.run(scenario())


def test_state_merges_never_go_backwards() -> None:
    state = RiskState()
    newer = Position("a", "XBT/USD", qty=D("2"), version=5)
    assert state.merge_positions([newer]) == 1
    assert state.merge_positions([Position("a", "XBT/USD", qty=D("1"), version=4)]) == 0
    assert state.positions["a"]["XBT/USD"].qty == 2
    mark = Mark("XBT/USD", D("10"), NOW, NOW.date(), D("10"))
    state.merge_marks([mark])
    assert state.merge_marks([Mark("XBT/USD", D("9"), NOW - timedelta(seconds=1), NOW.date(), D("9"))]) == 0
    assert state.marks["XBT/USD"].price == 10


def test_esg_index_is_canonical_but_listing_keeps_spelling() -> None:
    state = RiskState()
    state.set_esg([EsgExclusion("XBT", "energy"), EsgExclusion("XDG", "meme")])
    assert set(state.esg) == {"BTC", "DOGE"} and set(state.esg_entries) == {"XBT", "XDG"}


def test_notify_payload_names_rows_or_asks_for_everything() -> None:
    small = changes_payload([Position("a", "XBT/USD")], [Mark("XBT/USD", D(1), NOW, NOW.date(), D(1))])
    assert json.loads(small.removeprefix("positions:")) == {"p": [["a", "XBT/USD"]], "m": ["XBT/USD"]}
    many = [Position(f"account-{i}", "XBT/USD") for i in range(MAX_NOTIFY_BYTES // 10)]
    assert changes_payload(many, []) == "positions:*"


def test_audit_documents_are_json_safe() -> None:
    doc = jsonable(KillSwitch("a", True, "r", NOW, "me"))
    assert doc == {"account": "a", "active": True, "reason": "r", "at": NOW.isoformat(), "set_by": "me"}
    assert jsonable({"x": D("1.50"), "when": NOW.date()}) == {"x": "1.5", "when": "2026-03-02"}


class FakeNats:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.fail = fail

    async def publish(self, subj: str, payload: bytes) -> None:
        if self.fail:
            raise ConnectionError("nats down")
        self.published.append((subj, json.loads(payload)))

    async def flush(self, timeout: float) -> None:
        pass


def test_broadcast_document_and_failure() -> None:
    switch = KillSwitch("desk.a", True, "halt", NOW, "officer")
    nats = FakeNats()
    assert asyncio.run(broadcast(nats, switch))
    assert nats.published == [("risk.killswitch.desk.a", {
        "account": "desk.a", "active": True, "reason": "halt", "at": NOW.isoformat(), "set_by": "officer",
        "rebroadcast": False,
    })]
    assert subject("x") == "risk.killswitch.x"
    assert asyncio.run(broadcast(FakeNats(fail=True), switch)) is False
    assert asyncio.run(broadcast(None, switch)) is False
