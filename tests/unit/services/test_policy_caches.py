"""policy-service caches without servers: permissions (TTL, stale-while-revalidate, failures) and rules."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from sandbox.services.policy.account_rules import AccountRules
from sandbox.services.policy.checks import Permissions
from sandbox.services.policy.instruments import Instrument
from sandbox.services.policy.permissions import PermissionsCache, PermissionsUnavailable, parse_permissions
from sandbox.services.policy.rules_cache import RulesCache


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Secrets:
    """A fake secrets-service: counts calls, can fail or be slow."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.perms: dict[str, set[str]] = {"a": {"trade"}}
        self.fail = False
        self.gate: asyncio.Event | None = None

    async def __call__(self, account: str) -> Permissions:
        self.calls.append(account)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail:
            raise PermissionsUnavailable("down")
        return Permissions(account, frozenset(self.perms.get(account, set())), 1)


def make(ttl: float = 10, stale: float = 60) -> tuple[PermissionsCache, Secrets, Clock, list[str]]:
    secrets, clock, results = Secrets(), Clock(), []
    cache = PermissionsCache(secrets, ttl_s=ttl, max_stale_s=stale, max_entries=3, failure_backoff_s=2, clock=clock,
                             on_result=results.append)
    return cache, secrets, clock, results


def test_hit_stale_miss_and_background_refresh() -> None:
    async def go() -> None:
        cache, secrets, clock, results = make()
        assert (await cache.get("a")).permissions == {"trade"}
        assert (await cache.get("a")).permissions == {"trade"}
        assert secrets.calls == ["a"] and results == ["miss", "hit"]
        secrets.perms["a"] = set()
        clock.now += 11  # stale: served as is, refreshed in the background
        assert (await cache.get("a")).permissions == {"trade"}
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert secrets.calls == ["a", "a"]
        assert (await cache.get("a")).permissions == frozenset()
        assert results[-2:] == ["stale", "hit"]
        await cache.close()

    asyncio.run(go())


def test_too_stale_entries_are_refetched_and_failures_back_off() -> None:
    async def go() -> None:
        cache, secrets, clock, results = make()
        await cache.get("a")
        secrets.fail = True
        clock.now += 61  # beyond max_stale: must fetch, and the fetch fails
        assert await cache.get("a") is None
        assert len(cache) == 0
        assert await cache.get("a") is None  # within the backoff: no call
        assert secrets.calls == ["a", "a"]
        clock.now += 3
        secrets.fail = False
        assert (await cache.get("a")).permissions == {"trade"}
        assert results == ["miss", "unavailable", "unavailable", "miss"]

    asyncio.run(go())


def test_a_failed_refresh_keeps_a_usable_entry() -> None:
    async def go() -> None:
        cache, secrets, clock, _ = make()
        await cache.get("a")
        secrets.fail = True
        clock.now += 30
        assert (await cache.get("a")).permissions == {"trade"}  # stale, refresh fails in the background
        for _ in range(3):
            await asyncio.sleep(0)
        assert (await cache.get("a")).permissions == {"trade"}
        await cache.close()

    asyncio.run(go())


def test_concurrent_misses_share_one_fetch_and_size_is_bounded() -> None:
    async def go() -> None:
        cache, secrets, _, _ = make()
        secrets.gate = asyncio.Event()
        waiting = [asyncio.create_task(cache.get("a")) for _ in range(20)]
        await asyncio.sleep(0)
        secrets.gate.set()
        done = await asyncio.gather(*waiting)
        assert secrets.calls == ["a"] and all(p is done[0] for p in done)
        for acc in ("b", "c", "d"):
            await cache.get(acc)
        assert len(cache) == 3 and cache.peek("a") is None  # least recently used went first
        assert cache.invalidate("d") == 1 and cache.invalidate() == 2 and len(cache) == 0
        assert await cache.prefetch(["x", "y"]) == 2

    asyncio.run(go())


def test_an_invalidation_during_a_fetch_wins() -> None:
    async def go() -> None:
        cache, secrets, _, _ = make()
        secrets.gate = asyncio.Event()
        task = asyncio.create_task(cache.get("a"))
        await asyncio.sleep(0)
        cache.invalidate()
        secrets.gate.set()
        assert (await task).permissions == {"trade"}  # the caller gets its answer
        assert cache.peek("a") is None  # but a pre-invalidation answer is not kept

    asyncio.run(go())


def test_unexpected_fetch_errors_are_unavailable() -> None:
    async def boom(account: str) -> Permissions:
        raise RuntimeError("bug")

    async def go() -> None:
        cache = PermissionsCache(boom, ttl_s=1, max_stale_s=1)
        assert await cache.get("a") is None

    asyncio.run(go())


def test_parse_permissions() -> None:
    p = parse_permissions("a", {"account": "a", "permissions": ["trade", "query_funds"],
                                "keys": [{"key_id": "k", "permissions": ["trade"]}]})
    assert p == Permissions("a", frozenset({"trade", "query_funds"}), 1)
    for bad in ([], {"permissions": "trade"}, {"permissions": [1]}):
        with pytest.raises(PermissionsUnavailable):
            parse_permissions("a", bad)


def rules(account: str, version: int) -> AccountRules:
    return AccountRules.build(account, ["XBT/USD"], {"usd": Decimal("5")}, version)


def test_rules_cache_applies_in_revision_order() -> None:
    async def go() -> None:
        cache = RulesCache(None, "", poll_s=1)  # type: ignore[arg-type]
        cache.revision = 3
        reloads: list[int] = []

        async def reload_all() -> int:
            reloads.append(1)
            return cache.revision

        cache.reload_all = reload_all  # type: ignore[method-assign]
        await cache.apply("a", rules("a", 1), 4)
        assert cache.get("a").version == 1 and cache.revision == 4 and reloads == []
        await cache.apply("a", None, 4)  # already seen
        assert cache.get("a") is not None
        await cache.apply("a", None, 5)
        assert cache.get("a") is None and cache.revision == 5
        await cache.apply("b", rules("b", 1), 7)  # revision 6 was missed: reload everything
        assert reloads == [1]

    asyncio.run(go())


def test_account_rules_matching() -> None:
    r = AccountRules.build("a", ["BTC-USD"], {"zusd": Decimal("10")}, 1)
    xbt = Instrument("XBT/USD", "XBTUSD", "XXBTZUSD", "XBT", "USD", "ZUSD", Decimal("0.0001"), None, Decimal("0.1"),
                     1, 8, "online", True, "approved")
    assert r.allows(xbt, "whatever") and r.allows(None, "xbt/usd") and not r.allows(None, "ETH/USD")
    assert r.notional_limit(xbt) == ("ZUSD", Decimal("10"))
    assert r.document() == {"allowed_symbols": ["BTC-USD"], "max_order_notional": {"ZUSD": "10"}}
    assert AccountRules.build("a", None, None, 1).allows(None, "anything")
