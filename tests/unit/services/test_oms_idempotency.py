"""Client order id claims in Redis (fakeredis): first wins, duplicates see the holder, take-over, give-back."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from sandbox.services.oms.idempotency import IdempotencyKeys, key_for


@pytest.fixture
def keys() -> IdempotencyKeys:
    return IdempotencyKeys(fakeredis.FakeAsyncRedis(decode_responses=True), ttl_s=600)


def test_the_first_claim_wins_and_duplicates_learn_the_original_order(keys: IdempotencyKeys) -> None:
    async def go() -> None:
        assert await keys.claim("acct-1", "c-1", "order-a") is None
        assert await keys.claim("acct-1", "c-1", "order-b") == "order-a"
        assert await keys.claim("acct-2", "c-1", "order-c") is None, "client ids are per account"
        assert 0 < await keys.redis.ttl(key_for("acct-1", "c-1")) <= 600

    asyncio.run(go())


def test_concurrent_duplicates_make_exactly_one_claim(keys: IdempotencyKeys) -> None:
    async def go() -> list[str | None]:
        return await asyncio.gather(*(keys.claim("acct-1", "dup", f"order-{i}") for i in range(50)))

    results = asyncio.run(go())
    winners = [i for i, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert {r for r in results if r is not None} == {f"order-{winners[0]}"}


def test_take_over_and_give_back_are_compare_and_set(keys: IdempotencyKeys) -> None:
    async def go() -> None:
        await keys.claim("a", "c", "stale")
        assert not await keys.take_over("a", "c", "someone-else", "new")
        assert await keys.take_over("a", "c", "stale", "new")
        assert await keys.claim("a", "c", "x") == "new"
        assert not await keys.give_back("a", "c", "stale")
        assert await keys.give_back("a", "c", "new")
        assert await keys.claim("a", "c", "again") is None

    asyncio.run(go())
