"""The kit's HeldConnections against PostgreSQL: statements on held connections, the pool as the fallback."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import asyncpg
import pytest

from sandbox.infra.ports import free_port
from sandbox.services.kit.db import HeldConnections

_BACKEND = "SELECT pg_backend_pid()"


async def _pool_pids(pool: asyncpg.Pool) -> set[int]:
    async with pool.acquire() as a, pool.acquire() as b:
        return {await a.fetchval(_BACKEND), await b.fetchval(_BACKEND)}


def _dsn(postgres: Any) -> str:
    dbname = f"held_{secrets.token_hex(3)}"
    postgres.create_database(dbname)
    return postgres.dsn(dbname)


def test_statements_run_on_held_connections_and_errors_keep_or_drop_them(postgres: Any) -> None:
    dsn = _dsn(postgres)

    async def main() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=2)
        held = HeldConnections(pool, dsn, size=2)
        try:
            await held.start()
            pool_pids = await _pool_pids(pool)
            first = await held.fetchval(_BACKEND)
            assert first not in pool_pids
            assert await held.fetchval(_BACKEND) == first  # the one idle connection is reused
            # Two at once: both held connections, none of the pool's.
            both = set(await asyncio.gather(held.fetchval(_BACKEND), held.fetchval(_BACKEND)))
            assert len(both) == 2 and not both & pool_pids
            # A third while both are busy is the pool's.
            busy = [held.fetchval("SELECT pg_backend_pid() FROM pg_sleep(0.3)") for _ in range(2)]
            third = asyncio.gather(*busy, held.fetchval(_BACKEND))
            *slow, quick = await third
            assert set(slow) == both and quick in pool_pids

            # The server refusing a statement ends the exchange cleanly: the connection stays.
            with pytest.raises(asyncpg.UndefinedTableError):
                await held.execute("SELECT * FROM no_such_table")
            assert set(await asyncio.gather(held.fetchval(_BACKEND), held.fetchval(_BACKEND))) == both
            assert (await held.fetchrow("SELECT 1 AS one"))["one"] == 1
            assert await held.execute("SELECT 1") == "SELECT 1"

            # A statement cancelled half way drops its connection; another is opened in its place.
            task = asyncio.ensure_future(held.fetchval("SELECT pg_sleep(5)"))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            survivors = {await held.fetchval(_BACKEND)}
            for _ in range(50):  # the replacement opens in the background
                got = set(await asyncio.gather(held.fetchval(_BACKEND), held.fetchval(_BACKEND)))
                if len(got - pool_pids) == 2:
                    break
                await asyncio.sleep(0.05)
            assert len(got - pool_pids) == 2 and survivors <= got and got != both
            # Anything else is the pool's own.
            async with held.acquire() as con:
                assert await con.fetchval(_BACKEND) in pool_pids
        finally:
            await held.close()
            await pool.close()
        assert held._idle == []

    asyncio.run(main())


def test_the_pool_answers_when_no_held_connection_can_be_opened(postgres: Any) -> None:
    dsn = _dsn(postgres)

    async def main() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        held = HeldConnections(pool, f"postgresql://127.0.0.1:{free_port()}/nowhere", size=2, retry_s=60)
        try:
            await held.start()  # refused: logged, not raised
            pool_pids = await _pool_pids(pool)
            assert await held.fetchval(_BACKEND) in pool_pids
            assert (await held.fetchrow("SELECT 2 AS two"))["two"] == 2
            await asyncio.sleep(0.1)
            assert held._open == 0 and held._idle == []
        finally:
            await held.close()
            await pool.close()

    asyncio.run(main())
