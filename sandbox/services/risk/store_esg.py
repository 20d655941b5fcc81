"""The ESG dataset in PostgreSQL: excluded assets with a reason and a score (audited, notified)."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from sandbox.services.kit.auth import Principal
from sandbox.services.kit.errors import ServiceError
from sandbox.services.risk import audit
from sandbox.services.risk.domain import EsgExclusion

ESG = "esg_exclusion"
_COLUMNS = "asset, reason, score, updated_at, updated_by"


def _exclusion(row: asyncpg.Record) -> EsgExclusion:
    return EsgExclusion(**dict(row))


async def load_exclusions(pool: asyncpg.Pool) -> list[EsgExclusion]:
    """Every ESG exclusion."""
    return [_exclusion(r) for r in await pool.fetch(f"SELECT {_COLUMNS} FROM esg_exclusions ORDER BY asset")]


async def create_exclusion(
    pool: asyncpg.Pool, who: Principal, asset: str, reason: str, score: Decimal | None
) -> EsgExclusion:
    """Exclude an asset (409 ``esg_exclusion_exists`` when it already is)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"INSERT INTO esg_exclusions (asset, reason, score, updated_by) VALUES ($1, $2, $3, $4)"
            f" ON CONFLICT (asset) DO NOTHING RETURNING {_COLUMNS}",
            asset, reason, score, who.subject,
        )
        if row is None:
            raise ServiceError(409, "esg_exclusion_exists", f"{asset} is already excluded (use PUT to replace)")
        exclusion = _exclusion(row)
        await audit.record(conn, who, "create", ESG, asset, None, exclusion)
        await audit.notify(conn, ESG)
    return exclusion


async def put_exclusion(
    pool: asyncpg.Pool, who: Principal, asset: str, reason: str, score: Decimal | None
) -> tuple[EsgExclusion, bool]:
    """Create or replace an asset's exclusion; ``(exclusion, created)``."""
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(f"SELECT {_COLUMNS} FROM esg_exclusions WHERE asset = $1 FOR UPDATE", asset)
        row = await conn.fetchrow(
            f"INSERT INTO esg_exclusions (asset, reason, score, updated_by) VALUES ($1, $2, $3, $4)"
            f" ON CONFLICT (asset) DO UPDATE SET reason = EXCLUDED.reason, score = EXCLUDED.score,"
            f" updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING {_COLUMNS}",
            asset, reason, score, who.subject,
        )
        exclusion = _exclusion(row)
        await audit.record(
            conn, who, "create" if before is None else "update", ESG, asset,
            None if before is None else _exclusion(before), exclusion,
        )
        await audit.notify(conn, ESG)
    return exclusion, before is None


async def delete_exclusion(pool: asyncpg.Pool, who: Principal, asset: str) -> EsgExclusion | None:
    """Lift an asset's exclusion; None when it was not excluded."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(f"DELETE FROM esg_exclusions WHERE asset = $1 RETURNING {_COLUMNS}", asset)
        if row is None:
            return None
        exclusion = _exclusion(row)
        await audit.record(conn, who, "delete", ESG, asset, exclusion, None)
        await audit.notify(conn, ESG)
    return exclusion
