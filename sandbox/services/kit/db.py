"""PostgreSQL helpers: the pool, ordered idempotent migrations, time-series tables.

Migrations run one transaction each, serialised across replicas by
``pg_advisory_xact_lock`` and recorded in ``schema_migrations`` so replicas
starting together apply each migration exactly once.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

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
