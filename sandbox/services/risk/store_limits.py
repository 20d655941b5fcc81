"""Limits in the diversification database: account limits (``*`` = defaults) and position limits."""

from __future__ import annotations

from decimal import Decimal

import asyncpg

from sandbox.services.kit.auth import Principal
from sandbox.services.risk import audit
from sandbox.services.risk.domain import AccountLimits, LimitSet, PositionLimit

ACCOUNT_LIMITS = "account_limits"
POSITION_LIMIT = "position_limit"
LIMITS = "limits"  # the NOTIFY payload of both

_ACCOUNT_COLUMNS = "account, gross_exposure, daily_loss, concentration_pct, concentration_floor, updated_at, updated_by"
_POSITION_COLUMNS = "account, symbol, max_position, updated_at, updated_by"


def _account(row: asyncpg.Record) -> tuple[str, AccountLimits]:
    doc = dict(row)
    return doc.pop("account"), AccountLimits(**doc)


def _position(row: asyncpg.Record) -> PositionLimit:
    return PositionLimit(**dict(row))


async def load_limits(pool: asyncpg.Pool) -> LimitSet:
    """Every account limit and position limit."""
    async with pool.acquire() as conn:
        accounts = dict(_account(r) for r in await conn.fetch(f"SELECT {_ACCOUNT_COLUMNS} FROM account_limits"))
        positions = {
            (p.account, p.symbol): p
            for p in map(_position, await conn.fetch(f"SELECT {_POSITION_COLUMNS} FROM position_limits"))
        }
    return LimitSet(accounts, positions)


async def put_account_limits(
    pool: asyncpg.Pool, who: Principal, account: str, limits: AccountLimits
) -> tuple[AccountLimits, bool]:
    """Create or replace an account's limits (``*`` = the defaults); ``(limits, created)``."""
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            f"SELECT {_ACCOUNT_COLUMNS} FROM account_limits WHERE account = $1 FOR UPDATE", account
        )
        row = await conn.fetchrow(
            f"INSERT INTO account_limits (account, gross_exposure, daily_loss, concentration_pct,"
            f" concentration_floor, updated_by) VALUES ($1, $2, $3, $4, $5, $6)"
            f" ON CONFLICT (account) DO UPDATE SET gross_exposure = EXCLUDED.gross_exposure,"
            f" daily_loss = EXCLUDED.daily_loss, concentration_pct = EXCLUDED.concentration_pct,"
            f" concentration_floor = EXCLUDED.concentration_floor, updated_by = EXCLUDED.updated_by,"
            f" updated_at = now() RETURNING {_ACCOUNT_COLUMNS}",
            account, limits.gross_exposure, limits.daily_loss, limits.concentration_pct,
            limits.concentration_floor, who.subject,
        )
        stored = _account(row)[1]
        await audit.record(
            conn, who, "create" if before is None else "update", ACCOUNT_LIMITS, account,
            None if before is None else _account(before)[1], stored,
        )
        await audit.notify(conn, LIMITS)
    return stored, before is None


async def delete_account_limits(pool: asyncpg.Pool, who: Principal, account: str) -> AccountLimits | None:
    """Remove an account's limits (the defaults apply again); None when it had none."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(f"DELETE FROM account_limits WHERE account = $1 RETURNING {_ACCOUNT_COLUMNS}", account)
        if row is None:
            return None
        removed = _account(row)[1]
        await audit.record(conn, who, "delete", ACCOUNT_LIMITS, account, removed, None)
        await audit.notify(conn, LIMITS)
    return removed


async def put_position_limit(
    pool: asyncpg.Pool, who: Principal, account: str, symbol: str, max_position: Decimal
) -> tuple[PositionLimit, bool]:
    """Create or replace a position limit; ``(limit, created)``."""
    key = f"{account}|{symbol}"
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            f"SELECT {_POSITION_COLUMNS} FROM position_limits WHERE account = $1 AND symbol = $2 FOR UPDATE",
            account, symbol,
        )
        row = await conn.fetchrow(
            f"INSERT INTO position_limits (account, symbol, max_position, updated_by) VALUES ($1, $2, $3, $4)"
            f" ON CONFLICT (account, symbol) DO UPDATE SET max_position = EXCLUDED.max_position,"
            f" updated_by = EXCLUDED.updated_by, updated_at = now() RETURNING {_POSITION_COLUMNS}",
            account, symbol, max_position, who.subject,
        )
        stored = _position(row)
        await audit.record(
            conn, who, "create" if before is None else "update", POSITION_LIMIT, key,
            None if before is None else _position(before), stored,
        )
        await audit.notify(conn, LIMITS)
    return stored, before is None


async def delete_position_limit(pool: asyncpg.Pool, who: Principal, account: str, symbol: str) -> PositionLimit | None:
    """Remove a position limit; None when there was none."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"DELETE FROM position_limits WHERE account = $1 AND symbol = $2 RETURNING {_POSITION_COLUMNS}",
            account, symbol,
        )
        if row is None:
            return None
        removed = _position(row)
        await audit.record(conn, who, "delete", POSITION_LIMIT, f"{account}|{symbol}", removed, None)
        await audit.notify(conn, LIMITS)
    return removed
