"""The database connections, with the TLS settings from the ExternalSecret.

The kit's ``create_service_app(database_url=...)`` opens its pool with no way
to pass asyncpg's ``ssl`` argument, so this service opens the pool itself (the
same small pool the kit would: 1..5 connections, 30 s command timeout),
applies the migrations with the kit's migrator and publishes the pool as
``app.state.db``, where the kit's ``Db`` dependency and ``/healthz`` find it.
The LISTEN connection uses the same DSN and TLS.
"""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI

from sandbox.services.capital_allocator.dbssl import SslOption, describe
from sandbox.services.capital_allocator.migrations import MIGRATIONS
from sandbox.services.kit.app import retry_until
from sandbox.services.kit.db import TIMESCALE_ABSENT, TIMESCALE_PRESENT, apply_migrations, timescaledb_available

log = logging.getLogger("sandbox.services.capital_allocator.database")

POOL_MIN, POOL_MAX = 1, 5
COMMAND_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 5.0


class Database:
    """DSN + TLS option: opens the pool and dedicated connections."""

    def __init__(self, dsn: str, ssl: SslOption) -> None:
        """``ssl`` is asyncpg's ``ssl`` argument (None = asyncpg's default)."""
        self.dsn = dsn
        self.ssl = ssl

    async def create_pool(self) -> asyncpg.Pool:
        """A small pool (one worker per process, 200m CPU)."""
        return await asyncpg.create_pool(
            self.dsn, ssl=self.ssl, min_size=POOL_MIN, max_size=POOL_MAX,
            command_timeout=COMMAND_TIMEOUT_S, timeout=CONNECT_TIMEOUT_S,
        )

    async def connect(self) -> asyncpg.Connection:
        """One dedicated connection (for LISTEN)."""
        return await asyncpg.connect(self.dsn, ssl=self.ssl, timeout=CONNECT_TIMEOUT_S)

    async def open(self, app: FastAPI) -> asyncpg.Pool:
        """Open the pool (retrying while the server starts), migrate, and install it as ``app.state.db``."""
        pool = await retry_until("postgres", app.state.kit.startup_timeout_s, self.create_pool)
        try:
            await apply_migrations(pool, MIGRATIONS)
            async with pool.acquire() as conn:
                app.state.timescaledb = TIMESCALE_PRESENT if await timescaledb_available(conn) else TIMESCALE_ABSENT
                encrypted = await conn.fetchval("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        except BaseException:
            await pool.close()
            raise
        app.state.db = pool
        log.info("database connected", extra={"ssl": describe(self.ssl), "encrypted": encrypted})
        return pool
