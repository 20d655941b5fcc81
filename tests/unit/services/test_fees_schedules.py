"""The schedule cache without servers: an in-memory repository and a scripted universe source."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import pytest

from sandbox.services.fees.schedules import ScheduleNotFound, ScheduleStore, UniverseUnavailable
from sandbox.services.fees.tiers import FeeSchedule, FeeTier


def schedule(symbol: str, percent: str = "0.26", source: str = "universe") -> FeeSchedule:
    tiers = (FeeTier(Decimal(0), Decimal(percent)),)
    return FeeSchedule(symbol=symbol, quote="USD", quote_decimals=2, taker=tiers, maker=tiers, source=source)  # type: ignore[arg-type]


class MemoryRepository:
    """The repository contract on a dict."""

    def __init__(self) -> None:
        self.rows: dict[str, FeeSchedule] = {}

    async def load_all(self) -> list[FeeSchedule]:
        return list(self.rows.values())

    async def store_fetched(self, fetched: FeeSchedule) -> FeeSchedule:
        current = self.rows.get(fetched.symbol)
        if current is not None and current.source == "manual":
            return current
        self.rows[fetched.symbol] = fetched
        return fetched

    async def put_manual(self, manual: FeeSchedule) -> tuple[FeeSchedule, bool]:
        created = manual.symbol not in self.rows
        self.rows[manual.symbol] = manual
        return manual, created

    async def delete(self, symbol: str) -> FeeSchedule | None:
        return self.rows.pop(symbol, None)


class ScriptedSource:
    """universe-service stand-in: known schedules, an 'down' switch, a gate to hold fetches, a call log."""

    def __init__(self, known: dict[str, FeeSchedule]) -> None:
        self.known = known
        self.down = False
        self.calls: list[str] = []
        self.gate: asyncio.Event | None = None

    async def fetch(self, symbol: str) -> FeeSchedule | None:
        self.calls.append(symbol)
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise UniverseUnavailable("connection refused")
        return self.known.get(symbol)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(known: dict[str, FeeSchedule] | None = None) -> tuple[ScheduleStore, MemoryRepository, ScriptedSource, Clock]:
    repo, source, clock = MemoryRepository(), ScriptedSource(known or {}), Clock()
    store = ScheduleStore(repo, source, ttl_s=300, miss_ttl_s=10, clock=clock)
    return store, repo, source, clock


def test_fetched_once_then_served_from_memory() -> None:
    store, repo, source, _ = make({"XBT/USD": schedule("XBT/USD")})

    async def scenario() -> None:
        assert (await store.get("XBT/USD")).source == "universe"
        assert (await store.get("XBT/USD")).symbol == "XBT/USD"

    asyncio.run(scenario())
    assert source.calls == ["XBT/USD"]
    assert "XBT/USD" in repo.rows  # persisted for the next start


def test_concurrent_misses_make_one_fetch() -> None:
    store, _, source, _ = make({"XBT/USD": schedule("XBT/USD")})

    async def scenario() -> None:
        source.gate = asyncio.Event()
        tasks = [asyncio.create_task(store.get("XBT/USD")) for _ in range(25)]
        await asyncio.sleep(0)
        source.gate.set()
        results = await asyncio.gather(*tasks)
        assert {r.symbol for r in results} == {"XBT/USD"}

    asyncio.run(scenario())
    assert source.calls == ["XBT/USD"]


def test_unknown_symbols_are_remembered_for_a_while() -> None:
    store, _, source, clock = make()

    async def scenario() -> None:
        for _ in range(5):
            with pytest.raises(ScheduleNotFound):
                await store.get("NOPE/USD")
        assert source.calls == ["NOPE/USD"]
        clock.now += 11
        source.known["NOPE/USD"] = schedule("NOPE/USD")  # listed meanwhile
        assert (await store.get("NOPE/USD")).symbol == "NOPE/USD"

    asyncio.run(scenario())


def test_universe_down_is_unavailable_not_unknown_and_not_remembered() -> None:
    store, _, source, _ = make({"XBT/USD": schedule("XBT/USD")})
    source.down = True

    async def scenario() -> None:
        with pytest.raises(UniverseUnavailable):
            await store.get("XBT/USD")
        source.down = False
        assert (await store.get("XBT/USD")).symbol == "XBT/USD"

    asyncio.run(scenario())
    assert store.fetch_failures == 1


def test_manual_schedule_pins_the_symbol_until_deleted() -> None:
    store, repo, source, clock = make({"XBT/USD": schedule("XBT/USD", "0.26")})

    async def scenario() -> None:
        await store.get("XBT/USD")
        stored, created = await store.put_manual(schedule("XBT/USD", "0.10", source="manual"))
        assert (stored.source, created) == ("manual", False)
        clock.now += 301  # universe copy would be stale by now: the manual one is not refreshed
        assert store.stale() == []
        await store.refresh_stale()
        assert (await store.get("XBT/USD")).taker[0].percent == Decimal("0.10")
        assert await store.delete("XBT/USD") is not None
        assert (await store.get("XBT/USD")).source == "universe"  # fetched again

    asyncio.run(scenario())
    assert source.calls == ["XBT/USD", "XBT/USD"]


def test_a_fetch_never_overwrites_a_manual_schedule_stored_by_another_replica() -> None:
    store, repo, _, _ = make({"XBT/USD": schedule("XBT/USD", "0.26")})
    repo.rows["XBT/USD"] = schedule("XBT/USD", "0.05", source="manual")  # written by another replica

    async def scenario() -> None:
        got = await store.get("XBT/USD")  # not cached here yet: fetched, but the manual row wins
        assert (got.source, got.taker[0].percent) == ("manual", Decimal("0.05"))

    asyncio.run(scenario())


def test_stale_schedules_refresh_in_the_background_and_survive_failures() -> None:
    store, _, source, clock = make({"XBT/USD": schedule("XBT/USD", "0.26")})

    async def scenario() -> None:
        await store.get("XBT/USD")
        source.known["XBT/USD"] = schedule("XBT/USD", "0.24")
        clock.now += 301
        source.down = True
        assert await store.refresh_stale() == 0
        assert (await store.get("XBT/USD")).taker[0].percent == Decimal("0.26")  # the cached copy serves
        source.down = False
        clock.now += 31
        assert await store.refresh_stale() == 1
        assert (await store.get("XBT/USD")).taker[0].percent == Decimal("0.24")

    asyncio.run(scenario())


def test_reload_converges_with_other_replicas_and_marks_old_copies_stale() -> None:
    store, repo, _, _ = make()
    repo.rows["ETH/USD"] = schedule("ETH/USD")
    repo.rows["SOL/USD"] = schedule("SOL/USD", source="manual")

    async def scenario() -> None:
        assert await store.load() == 2
        assert store.stale() == ["ETH/USD"]  # from an earlier run: refreshed at the next cycle
        del repo.rows["SOL/USD"]  # deleted on another replica
        await store.load()
        assert store.peek("SOL/USD") is None

    asyncio.run(scenario())


def test_without_a_source_only_manual_schedules_exist() -> None:
    repo = MemoryRepository()
    store = ScheduleStore(repo, None)

    async def scenario() -> None:
        with pytest.raises(ScheduleNotFound):
            await store.get("XBT/USD")
        await store.put_manual(dataclasses.replace(schedule("XBT/USD"), source="manual"))
        assert (await store.get("XBT/USD")).source == "manual"
        assert [s.symbol for s in store.all()] == ["XBT/USD"]

    asyncio.run(scenario())
    assert not store.has_source
