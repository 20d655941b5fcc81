"""PostgreSQL helpers: the pool, ordered idempotent migrations, time-series tables.

Migrations run one transaction each, serialised across replicas by
``pg_advisory_xact_lock`` and recorded in ``schema_migrations`` so replicas
starting together apply each migration exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

log = logging.getLogger("sandbox.services.kit.db")

#: One advisory-lock key for every kit migration (advisory locks are per database).
MIGRATION_LOCK_KEY = 0x61657468_6D696772  # "aethmigr"

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

TIMESCALE_ABSENT = "absent: plain tables with a time index"
TIMESCALE_PRESENT = "present: hypertables"


class MigrationError(RuntimeError):
    """The migration list is inconsistent with itself or with what the database recorded."""


@dataclass(frozen=True)
class Migration:
    """One schema change: applied once, in ``version`` order."""

    version: int
    name: str
    sql: str


def plan_migrations(migrations: Iterable[Migration], applied: Mapping[int, str]) -> list[Migration]:
    """The migrations still to apply, in version order.

    Raises :class:`MigrationError` for non-positive or duplicate versions and for
    a version the database recorded under another name (the code changed a
    migration that already ran).
    """
    ordered = sorted(migrations, key=lambda m: m.version)
    seen: set[int] = set()
    for m in ordered:
        if m.version <= 0:
            raise MigrationError(f"migration {m.name!r}: version must be positive, got {m.version}")
        if m.version in seen:
            raise MigrationError(f"duplicate migration version {m.version}")
        seen.add(m.version)
        recorded = applied.get(m.version)
        if recorded is not None and recorded != m.name:
            raise MigrationError(
                f"migration {m.version} is recorded as {recorded!r} but the code names it {m.name!r}"
            )
    return [m for m in ordered if m.version not in applied]


_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def apply_migrations(pool: asyncpg.Pool, migrations: Sequence[Migration]) -> list[int]:
    """Apply pending migrations; return the versions this call applied (idempotent)."""
    plan_migrations(migrations, {})  # validate the list before touching the database
    async with pool.acquire() as conn:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            await conn.execute(_CREATE_TABLE)
        done: list[int] = []
        for migration in sorted(migrations, key=lambda m: m.version):
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
                rows = await conn.fetch("SELECT version, name FROM schema_migrations")
                pending = plan_migrations([migration], {r["version"]: r["name"] for r in rows})
                if not pending:
                    continue
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
                )
                done.append(migration.version)
                log.info("migration applied", extra={"version": migration.version, "migration": migration.name})
    return done


async def timescaledb_available(conn: asyncpg.Connection) -> bool:
    """Whether the timescaledb extension can be created in this database."""
    row = await conn.fetchval("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
    return row is not None


async def make_time_series(conn: asyncpg.Connection, table: str, time_column: str) -> str:
    """Turn ``table`` into a hypertable when TimescaleDB exists, else index ``time_column``.

    Returns ``"hypertable"`` or ``"plain"``. Idempotent.
    """
    for ident in (table, time_column):
        if not _IDENT.match(ident):
            raise ValueError(f"not a plain SQL identifier: {ident!r}")
    if await timescaledb_available(conn):
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
        await conn.execute(
            "SELECT create_hypertable($1::regclass, $2::name, if_not_exists => TRUE, migrate_data => TRUE)",
            table, time_column,
        )
        return "hypertable"
    await conn.execute(f'CREATE INDEX IF NOT EXISTS "{table}_{time_column}_idx" ON "{table}" ("{time_column}" DESC)')
    return "plain"


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 5) -> asyncpg.Pool:
    """An asyncpg pool (small: one worker per process, 100-200m CPU)."""
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size, command_timeout=30)


class HeldConnections:
    """A pool whose single-statement calls run on a few connections held aside from it.

    ``Pool.fetchrow`` acquires a holder, wraps the connection in a proxy and
    releases it through ``asyncio.shield`` (a task, futures and callbacks per
    statement): in the OMS, about a twentieth of its CPU per order went there.
    ``fetchrow``, ``fetchval`` and ``execute`` here take an idle held connection
    (a list pop and append); while none is idle (or none could be opened) the
    pool runs the statement as before. Everything else (``acquire``,
    transactions, ``fetch``, ``close``...) is the pool's own.

    A held connection is reused after its statement completed or the server
    refused it (a ``PostgresError`` ends the exchange cleanly); any other error
    or a cancellation while it is out drops it (terminated, reopened on demand,
    after ``retry_s`` when opening failed), so no half-finished protocol state is
    ever reused. Use only for statements outside explicit transactions and for a
    service that changes no session state (the pool's connections are not
    reset between uses here either).
    """

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, size: int = 2, retry_s: float = 5.0) -> None:
        """Hold up to ``size`` connections to ``dsn`` beside ``pool``."""
        self.pool = pool
        self.dsn = dsn
        self.size = size
        self.retry_s = retry_s
        self._idle: list[asyncpg.Connection] = []
        self._open = 0
        self._opening = False
        self._next_try = 0.0
        self._closed = False
        self._opener: asyncio.Task[bool] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)

    async def start(self) -> None:
        """Open the held connections now (failures leave the pool to answer; they are retried later)."""
        while self._open < self.size and not self._closed:
            if not await self._open_one():
                break

    async def close(self) -> None:
        """Close the held connections (the pool is closed by its owner)."""
        self._closed = True
        idle, self._idle = self._idle, []
        for con in idle:
            with contextlib.suppress(Exception):
                await con.close(timeout=2)

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any:
        """``Pool.fetchrow``."""
        con = self._take()
        if con is None:
            return await self.pool.fetchrow(query, *args, timeout=timeout)
        return self._give(con, await self._run(con, con.fetchrow(query, *args, timeout=timeout)))

    async def fetchval(self, query: str, *args: Any, column: int = 0, timeout: float | None = None) -> Any:
        """``Pool.fetchval``."""
        con = self._take()
        if con is None:
            return await self.pool.fetchval(query, *args, column=column, timeout=timeout)
        return self._give(con, await self._run(con, con.fetchval(query, *args, column=column, timeout=timeout)))

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        """``Pool.execute``."""
        con = self._take()
        if con is None:
            return await self.pool.execute(query, *args, timeout=timeout)
        return self._give(con, await self._run(con, con.execute(query, *args, timeout=timeout)))

    def _take(self) -> asyncpg.Connection | None:
        if self._idle:
            return self._idle.pop()
        if self._open < self.size and not self._opening and not self._closed and time.monotonic() >= self._next_try:
            self._opening = True
            self._opener = asyncio.get_running_loop().create_task(self._open_one())
        return None

    async def _run(self, con: asyncpg.Connection, call: Any) -> Any:
        try:
            return await call
        except asyncpg.PostgresError:
            self._give(con, None)
            raise
        except BaseException:
            self._open -= 1
            con.terminate()
            raise

    def _give(self, con: asyncpg.Connection, result: Any) -> Any:
        if self._closed or con.is_closed():
            self._open -= 1
            con.terminate()
        else:
            self._idle.append(con)
        return result

    async def _open_one(self) -> bool:
        self._opening = True
        try:
            con = await asyncpg.connect(self.dsn, command_timeout=30)
        except Exception as exc:  # noqa: BLE001 - the pool answers meanwhile
            self._next_try = time.monotonic() + self.retry_s
            log.warning("cannot open a held database connection; the pool serves meanwhile", extra={"error": str(exc)})
            return False
        finally:
            self._opening = False
        if self._closed:
            await con.close()
            return False
        self._open += 1
        self._idle.append(con)
        return True
