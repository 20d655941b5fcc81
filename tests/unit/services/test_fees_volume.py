"""Volume accounting without a database: USD conversion, digests, and the per-account cache."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from sandbox.services.fees.models import FillCreate
from sandbox.services.fees.volume import AccountVolume, UsdRates, VolumeCache, fill_digest, split_symbol, to_record

TS = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_fill(**overrides: object) -> FillCreate:
    body: dict[str, object] = {
        "fill_id": "f-1", "account": "a", "symbol": "XBT/USD", "side": "buy", "qty": "2",
        "price": "5000", "liquidity": "taker", "ts": TS,
    }
    body.update(overrides)
    return FillCreate.model_validate(body)


@pytest.mark.parametrize(
    ("symbol", "hint", "expected"),
    [
        ("XBT/USD", None, ("XBT", "USD")),
        ("ETH/XBT", None, ("ETH", "XBT")),
        ("XBTUSD", "USD", ("XBT", "USD")),
        ("XXBTZUSD", "USD", ("XBT", "USD")),
        ("XTZUSD", "USD", ("XTZ", "USD")),  # not a legacy Z-prefixed quote
        ("XBTUSD", None, ("", "")),
        ("USD", "USD", ("", "USD")),
    ],
)
def test_split_symbol(symbol: str, hint: str | None, expected: tuple[str, str]) -> None:
    assert split_symbol(symbol, hint) == expected


def test_usd_quoted_fill_counts_its_notional() -> None:
    rec = to_record(make_fill(), source="http", quote_hint=None, rates=UsdRates())
    assert (rec.quote, rec.notional, rec.usd_notional) == ("USD", Decimal("10000"), Decimal("10000"))


def test_non_usd_quote_uses_the_fill_rate_then_learned_rates_else_unpriced() -> None:
    rates = UsdRates()
    eur = to_record(make_fill(symbol="XBT/EUR", price="4000", quote_usd_rate="1.1"), source="kafka",
                    quote_hint=None, rates=rates)
    assert eur.usd_notional == Decimal("8800.0")
    unknown = to_record(make_fill(symbol="ETH/XBT", price="0.05"), source="kafka", quote_hint=None, rates=rates)
    assert unknown.usd_notional is None and unknown.quote == "XBT"
    # a USD fill teaches the XBT rate; the next XBT-quoted fill is converted with it
    to_record(make_fill(fill_id="f-2", price="60000"), source="kafka", quote_hint=None, rates=rates)
    assert rates.rate("XBT") == Decimal("60000")
    priced = to_record(make_fill(fill_id="f-3", symbol="ETH/XBT", qty="10", price="0.05"), source="kafka",
                       quote_hint=None, rates=rates)
    assert priced.usd_notional == Decimal("30000.00")


def test_digest_ignores_decimal_spelling_but_not_content() -> None:
    a = fill_digest(make_fill(qty="2", price="5000"))
    assert a == fill_digest(make_fill(qty="2.000", price="5E+3"))
    assert a == fill_digest(make_fill(ts="2026-01-01T01:00:00+01:00"))
    assert a != fill_digest(make_fill(qty="2.0001"))
    assert a != fill_digest(make_fill(account="b"))


def volume(account: str, usd: str = "1") -> AccountVolume:
    return AccountVolume(account, Decimal(usd), 1, {}, TS)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_cache_serves_within_ttl_and_reloads_after() -> None:
    calls: list[str] = []
    clock = FakeClock()

    async def loader(account: str) -> AccountVolume:
        calls.append(account)
        return volume(account, str(len(calls)))

    async def scenario() -> None:
        cache = VolumeCache(loader, ttl=2.0, clock=clock)
        assert (await cache.get("a")).volume_usd == 1
        assert (await cache.get("a")).volume_usd == 1
        clock.now += 2.5
        assert (await cache.get("a")).volume_usd == 2
        cache.invalidate(["a"])
        assert (await cache.get("a")).volume_usd == 3
        assert (cache.hits, cache.misses) == (1, 3)

    asyncio.run(scenario())


def test_concurrent_misses_share_one_load() -> None:
    calls: list[str] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        async def loader(account: str) -> AccountVolume:
            calls.append(account)
            await gate.wait()
            return volume(account, "7")

        cache = VolumeCache(loader)
        tasks = [asyncio.create_task(cache.get("a")) for _ in range(20)]
        await asyncio.sleep(0)
        gate.set()
        results = await asyncio.gather(*tasks)
        assert {r.volume_usd for r in results} == {Decimal(7)}

    asyncio.run(scenario())
    assert calls == ["a"]


def test_fill_recorded_during_a_load_is_not_hidden_by_the_cache() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        results = iter(["1", "2"])

        async def loader(account: str) -> AccountVolume:
            value = next(results)
            if value == "1":
                await gate.wait()
            return volume(account, value)

        cache = VolumeCache(loader, ttl=60)
        first = asyncio.create_task(cache.get("a"))
        await asyncio.sleep(0)
        cache.invalidate(["a"])  # a fill arrived while the first query ran
        gate.set()
        assert (await first).volume_usd == 1  # that caller gets what it asked for...
        assert (await cache.get("a")).volume_usd == 2  # ...but it was not cached

    asyncio.run(scenario())


def test_load_errors_reach_every_waiter_and_are_not_cached() -> None:
    attempts: list[int] = []

    async def scenario() -> None:
        gate = asyncio.Event()

        async def loader(account: str) -> AccountVolume:
            attempts.append(1)
            await gate.wait()
            if len(attempts) == 1:
                raise ConnectionError("db down")
            return volume(account)

        cache = VolumeCache(loader)
        tasks = [asyncio.create_task(cache.get("a")) for _ in range(3)]
        await asyncio.sleep(0)
        gate.set()
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(o, ConnectionError) for o in outcomes)
        assert (await cache.get("a")).volume_usd == 1

    asyncio.run(scenario())
    assert len(attempts) == 2


def test_cache_is_bounded() -> None:
    async def loader(account: str) -> AccountVolume:
        return volume(account)

    async def scenario() -> None:
        cache = VolumeCache(loader, max_entries=3)
        for name in "abcde":
            await cache.get(name)
        assert list(cache._entries) == ["c", "d", "e"]

    asyncio.run(scenario())
