"""The raw Redis path of the client order id claim (the kit's ``RawRedis``) against a real redis-server."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from sandbox.infra.ports import free_port
from sandbox.infra.redis import EmbeddedRedis
from sandbox.services.oms.idempotency import IdempotencyKeys, key_for
from sandbox.services.kit.resp import RawRedis


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    root: Path = tmp_path_factory.mktemp("rawredis")
    with EmbeddedRedis(root / "redis", free_port()) as server:
        yield server.url.rsplit("/", 1)[0] + "/3"


def test_claims_go_through_the_raw_connection_and_agree_with_redis_py(redis_url: str) -> None:
    async def go() -> None:
        client = aioredis.from_url(redis_url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5)
        keys = IdempotencyKeys(client, ttl_s=600)
        assert keys.raw is not None, "a plain TCP client gets the raw path"
        assert keys.raw.db == 3
        try:
            results = await asyncio.gather(*(keys.claim("acct-r", "dup", f"order-{i}") for i in range(30)))
            winners = [i for i, r in enumerate(results) if r is None]
            assert len(winners) == 1, "exactly one concurrent claim wins"
            assert {r for r in results if r is not None} == {f"order-{winners[0]}"}
            # what redis-py sees is what the raw path wrote (same database, value and TTL)
            assert await client.get(key_for("acct-r", "dup")) == f"order-{winners[0]}"
            assert 0 < await client.ttl(key_for("acct-r", "dup")) <= 600
            # the compare-and-set operations (redis-py) work on raw claims
            assert await keys.give_back("acct-r", "dup", f"order-{winners[0]}")
            assert await keys.claim("acct-r", "dup", "order-again") is None
        finally:
            keys.close()
            await client.aclose()

    asyncio.run(go())


def test_error_replies_and_lost_connections_raise_redis_errors(redis_url: str) -> None:
    async def go() -> None:
        host, port = redis_url.split("//", 1)[1].split("/", 1)[0].split(":")
        raw = RawRedis(host, int(port), db=3, timeout=2)
        try:
            assert await raw.execute(("SET", "rr:list", "x")) == ["OK"]
            with pytest.raises(ResponseError):
                await raw.execute(("LPUSH", "rr:list", "y"))  # WRONGTYPE
            assert await raw.execute(("GET", "rr:list"), ("GET", "rr:missing")) == ["x", None], \
                "the connection survives an error reply"
            [me] = await raw.execute(("CLIENT", "ID"))
            assert await raw.execute(("CLIENT", "KILL", "ID", me, "SKIPME", "no")) == [1]  # Redis closes it after the reply
            await asyncio.sleep(0.05)
            assert await raw.execute(("GET", "rr:list")) == ["x"], "the next command reconnects"
        finally:
            raw.close()
        dead = RawRedis("127.0.0.1", free_port(), connect_timeout=1)
        with pytest.raises(RedisConnectionError) as caught:
            await dead.execute(("GET", "k"))
        assert isinstance(caught.value, RedisError), "callers answer 503 on RedisError"

    asyncio.run(go())


def test_fakes_and_other_transports_keep_redis_py() -> None:
    import fakeredis

    assert RawRedis.for_client(fakeredis.FakeAsyncRedis(decode_responses=True)) is None
    assert RawRedis.for_client(aioredis.Redis(unix_socket_path="/tmp/none.sock")) is None


def test_a_claim_against_an_unreachable_redis_raises_a_redis_error() -> None:
    async def go() -> None:
        client = aioredis.from_url(f"redis://127.0.0.1:{free_port()}/0", decode_responses=True,
                                   socket_connect_timeout=1, socket_timeout=1)
        keys = IdempotencyKeys(client, ttl_s=60)
        assert keys.raw is not None
        with pytest.raises(RedisError):  # OrderService.place answers 503 idempotency_store_unavailable
            await keys.claim("a", "c", "o")
        await client.aclose()

    asyncio.run(go())
