"""The kit against real servers: migrations, time series, lifespan clients, readiness, ServiceClient."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from sandbox.services.kit import Db, KafkaDep, KitSettings, Migration, NatsDep, ServiceClient, apply_migrations, create_service_app, make_time_series
from sandbox.services.kit.db import MigrationError

pytestmark = pytest.mark.integration

M1 = Migration(1, "create_events", "CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL, body text)")
M2 = Migration(2, "add_kind", "ALTER TABLE events ADD COLUMN kind text")


@pytest.fixture
def database(postgres: Any) -> str:
    name = f"kit_{secrets.token_hex(4)}"
    postgres.create_database(name)
    return postgres.dsn(name)


def test_replicas_applying_migrations_together_apply_each_once(database: str) -> None:
    async def scenario() -> tuple[list[list[int]], list[Any]]:
        pools = [await asyncpg.create_pool(database, min_size=1, max_size=1) for _ in range(4)]
        try:
            applied = await asyncio.gather(*(apply_migrations(p, [M2, M1]) for p in pools))
            rows = await pools[0].fetch("SELECT version, name FROM schema_migrations ORDER BY version")
            assert await apply_migrations(pools[0], [M1, M2]) == []  # idempotent
            with pytest.raises(MigrationError, match="recorded as 'create_events'"):
                await apply_migrations(pools[0], [Migration(1, "renamed", "SELECT 1")])
            return applied, rows
        finally:
            for p in pools:
                await p.close()

    applied, rows = asyncio.run(scenario())
    assert sorted(v for a in applied for v in a) == [1, 2]
    assert [(r["version"], r["name"]) for r in rows] == [(1, "create_events"), (2, "add_kind")]


def test_a_failing_migration_leaves_nothing_behind(database: str) -> None:
    bad = Migration(2, "half_done", "CREATE TABLE half (id int); SELECT no_such_function()")

    async def scenario() -> tuple[list[int], bool]:
        pool = await asyncpg.create_pool(database, min_size=1, max_size=1)
        try:
            with pytest.raises(asyncpg.UndefinedFunctionError):
                await apply_migrations(pool, [M1, bad])
            versions = [r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations")]
            half = await pool.fetchval("SELECT to_regclass('half') IS NOT NULL")
            return versions, half
        finally:
            await pool.close()

    versions, half_exists = asyncio.run(scenario())
    assert versions == [1] and not half_exists


def test_time_series_falls_back_to_an_indexed_plain_table(database: str) -> None:
    async def scenario() -> tuple[str, str, list[str]]:
        conn = await asyncpg.connect(database)
        try:
            await conn.execute(M1.sql)
            first = await make_time_series(conn, "events", "at")
            again = await make_time_series(conn, "events", "at")
            indexes = [r["indexname"] for r in await conn.fetch("SELECT indexname FROM pg_indexes WHERE tablename = 'events'")]
            with pytest.raises(ValueError):
                await make_time_series(conn, "events; DROP TABLE events", "at")
            return first, again, indexes
        finally:
            await conn.close()

    first, again, indexes = asyncio.run(scenario())
    assert first == again == "plain"  # no TimescaleDB in the embedded PostgreSQL
    assert "events_at_idx" in indexes


def test_lifespan_opens_every_client_and_readiness_reports_them(
    database: str, redis_server: Any, nats_server: Any, kafka_broker: Any
) -> None:
    topic = f"kit-{secrets.token_hex(3)}"
    kafka_broker.create_topics([topic], 1)
    router = APIRouter()

    @router.post("/events")
    async def add(db: Db, kafka: KafkaDep, nc: NatsDep) -> dict:
        row = await db.fetchrow("INSERT INTO events (at, body) VALUES (now(), 'x') RETURNING id")
        await kafka.produce(topic, "k1", {"id": row["id"]})
        await nc.publish("kit.events", json.dumps({"id": row["id"]}).encode())
        await nc.flush()
        return {"id": row["id"]}

    async def make_series(app: FastAPI) -> None:
        async with app.state.db.acquire() as conn:
            app.state.series = await make_time_series(conn, "events", "at")

    kit = KitSettings(service_name="kit-it", session_redis_url=redis_server.url)
    app = create_service_app(
        kit=kit, title="kit-it", routers=[router], database_url=database, migrations=[M1, M2],
        redis_url=redis_server.url, nats_url=nats_server.url, kafka_bootstrap=kafka_broker.bootstrap,
        on_startup=[make_series],
    )
    with TestClient(app) as client:
        health = client.get("/healthz")
        assert health.status_code == 200, health.text
        assert health.json()["checks"] == {
            "database": "ok", "redis": "ok", "sessions": "ok", "nats": "ok", "kafka": "ok",
            "timescaledb": "absent: plain tables with a time index",
        }
        assert app.state.series == "plain"
        assert client.post("/events").json() == {"id": 1}

    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": kafka_broker.bootstrap, "group.id": f"g-{topic}",
                         "auto.offset.reset": "earliest", "session.timeout.ms": 6000})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        msg = None
        while msg is None and time.monotonic() < deadline:
            candidate = consumer.poll(0.5)
            if candidate is not None and not candidate.error():
                msg = candidate
    finally:
        consumer.close()
    assert msg is not None and msg.key() == b"k1" and json.loads(msg.value()) == {"id": 1}
    assert app.state.started is False  # lifespan shut down


def test_readiness_is_503_when_a_dependency_is_down(database: str) -> None:
    kit = KitSettings(service_name="kit-it", session_redis_url="redis://127.0.0.1:1/0")
    app = create_service_app(kit=kit, title="t", routers=[], database_url=database)
    with TestClient(app) as client:
        body = client.get("/healthz")
        assert body.status_code == 503
        assert body.json()["checks"]["database"] == "ok" and body.json()["checks"]["sessions"].startswith("error")
        assert client.get("/healthz?probe=live").status_code == 200


def test_unreachable_database_fails_start_up_after_the_timeout() -> None:
    kit = KitSettings(service_name="kit-it", session_redis_url="redis://127.0.0.1:1/0", startup_timeout_s=0.5)
    app = create_service_app(kit=kit, title="t", routers=[], database_url="postgresql://x:y@127.0.0.1:1/none")
    started = time.monotonic()
    with pytest.raises(OSError), TestClient(app):
        pass
    assert time.monotonic() - started < 10


def test_service_client_caches_its_token_and_renews_it_when_revoked(auth_service: Any) -> None:
    kit = KitSettings(
        service_name="kit-probe", auth_url=auth_service.url, session_redis_url=auth_service.env["AETHER_SESSION_REDIS_URL"],
        service_client_id="kit-probe", service_client_secret=auth_service.service_accounts["kit-probe"],
    )

    async def scenario() -> None:
        async with ServiceClient(kit, base_url=auth_service.url) as client:
            me = await client.get("/v1/me")
            assert me.status_code == 200 and me.json()["subject"] == "kit-probe" and me.json()["kind"] == "service"
            first = await client.token()
            assert (await client.get("/v1/me")).status_code == 200 and await client.token() == first  # cached
            # revoke the session behind the cached token: the next call gets 401, renews, retries
            async with httpx.AsyncClient() as raw:
                assert (await raw.post(f"{auth_service.url}/v1/logout", headers={"Authorization": f"Bearer {first}"})).status_code == 204
            again = await client.get("/v1/me")
            assert again.status_code == 200 and await client.token() != first

    asyncio.run(scenario())

    with pytest.raises(ValueError, match="AETHER_SERVICE_CLIENT_ID"):
        ServiceClient(KitSettings(service_name="x", session_redis_url="redis://127.0.0.1:1/0"))


def test_session_checks_over_bare_resp_follow_the_store_and_its_database(redis_server: Any) -> None:
    """The kit's session check talks RESP itself on plain redis:// URLs: answers in order, in the URL's database."""
    from sandbox.services.kit.app import redis_client
    from sandbox.services.kit.auth import SessionChecker, session_key

    base = redis_server.url.rsplit("/", 1)[0]

    async def scenario() -> None:
        sessions, other = redis_client(f"{base}/5"), redis_client(f"{base}/6")
        try:
            for i in range(0, 40, 2):
                await sessions.set(session_key(f"raw-{i}"), "1")
            await other.set(session_key("raw-other"), "1")
            checker = SessionChecker(sessions)
            assert checker.raw is not None  # the bare RESP path, not redis-py's pipeline
            answers = await asyncio.gather(*(checker.live(f"raw-{i}") for i in range(40)))
            assert answers == [i % 2 == 0 for i in range(40)]
            assert await checker.live("raw-other") is False  # another database's session is not this one's
            await sessions.delete(session_key("raw-0"))
            await sessions.ping()  # what auth-service does after a revocation (SessionStore.flushed)
            assert await checker.live("raw-0") is False  # revocation is seen on the next check
            checker.close()
            assert await checker.live("raw-2") is True  # reconnects after a close
            checker.close()
        finally:
            await sessions.aclose()
            await other.aclose()

    asyncio.run(scenario())


def test_live_sessions_are_cached_until_redis_invalidates_them_or_they_expire(redis_server: Any) -> None:
    """The session cache (client tracking): hits skip Redis; a delete, an expiry, a flush or a lost connection
    ends them, and a revocation is seen by the first check after the revoker's next reply."""
    from sandbox.services.kit.app import redis_client
    from sandbox.services.kit.auth import SessionChecker, session_key

    base = redis_server.url.rsplit("/", 1)[0]

    async def scenario() -> None:
        sessions = redis_client(f"{base}/7")
        try:
            await sessions.set(session_key("c-1"), "1")
            await sessions.set(session_key("c-2"), "1", px=400)
            checker = SessionChecker(sessions)
            assert checker.raw is not None
            assert await checker.live("c-1") and await checker.live("c-2") and not await checker.live("c-none")
            assert checker.raw.tracking and checker.raw.cache_size == 2  # misses are never cached
            info = await sessions.info("commandstats")
            calls = info.get("cmdstat_pttl", {}).get("calls", 0)
            for _ in range(50):
                assert await checker.live("c-1")
            info = await sessions.info("commandstats")
            assert info["cmdstat_pttl"]["calls"] == calls  # answered from the cache
            # revocation: the push Redis sent with the DEL is read before the next answer
            for round_ in range(20):
                sid = f"r-{round_}"
                await sessions.set(session_key(sid), "1")
                assert await checker.live(sid) and await checker.live(sid)
                await sessions.delete(session_key(sid))
                await sessions.ping()
                assert await checker.live(sid) is False
            # expiry: an entry never outlives the key's TTL, even before Redis deletes the key
            await asyncio.sleep(0.45)
            assert await checker.live("c-2") is False
            # a flush empties the cache; so does a lost connection (pushes may have been missed)
            assert await checker.live("c-1")
            await sessions.flushdb()
            await sessions.ping()
            assert await checker.live("c-1") is False
            await sessions.set(session_key("c-1"), "1")
            assert await checker.live("c-1") and checker.raw.cache_size == 1
            # bounded: past MAX_ENTRIES the cache starts over, answers stay right
            checker.raw.MAX_ENTRIES = 4
            for i in range(10):
                await sessions.set(session_key(f"b-{i}"), "1")
            assert all([await checker.live(f"b-{i}") for i in range(10)]) and checker.raw.cache_size <= 4
            checker.raw.MAX_ENTRIES = 100_000
            assert await checker.live("c-1") and checker.raw.cached(session_key("c-1"))
            await sessions.client_kill_filter(_type="normal", skipme=True)
            await asyncio.sleep(0.05)
            await sessions.delete(session_key("c-1"))
            assert await checker.live("c-1") is False
            checker.close()
        finally:
            await sessions.aclose()

    asyncio.run(scenario())
