"""The compliance dataset in PostgreSQL: the restricted list and kill switches (audited, notified)."""

from __future__ import annotations

from datetime import datetime, timezone

import asyncpg

from sandbox.services.kit.auth import Principal
from sandbox.services.kit.errors import ServiceError
from sandbox.services.risk import audit
from sandbox.services.risk.domain import KillSwitch, RestrictedEntry

RESTRICTED = "restricted"
KILL_SWITCH = "kill_switch"

_COLUMNS = "id, kind, value, account, reason, created_at, created_by, updated_at, updated_by"


def _entry(row: asyncpg.Record) -> RestrictedEntry:
    return RestrictedEntry(**dict(row))


async def load_restricted(pool: asyncpg.Pool) -> list[RestrictedEntry]:
    """Every restricted-list entry."""
    return [_entry(r) for r in await pool.fetch(f"SELECT {_COLUMNS} FROM restricted ORDER BY id")]


async def create_restricted(
    pool: asyncpg.Pool, who: Principal, *, kind: str, value: str, account: str | None, reason: str
) -> RestrictedEntry:
    """Add an entry (409 ``restricted_exists`` when the same kind/value/account is listed)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"INSERT INTO restricted (kind, value, account, reason, created_by, updated_by)"
            f" VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT DO NOTHING RETURNING {_COLUMNS}",
            kind, value, account, reason, who.subject,
        )
        if row is None:
            scope = f"account {account}" if account else "every account"
            raise ServiceError(409, "restricted_exists", f"{kind} {value} is already restricted for {scope}")
        entry = _entry(row)
        await audit.record(conn, who, "create", RESTRICTED, str(entry.id), None, entry)
        await audit.notify(conn, RESTRICTED)
    return entry


async def update_restricted(pool: asyncpg.Pool, who: Principal, entry_id: int, reason: str) -> RestrictedEntry | None:
    """Change an entry's reason; None when it does not exist."""
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(f"SELECT {_COLUMNS} FROM restricted WHERE id = $1 FOR UPDATE", entry_id)
        if before is None:
            return None
        row = await conn.fetchrow(
            f"UPDATE restricted SET reason = $2, updated_at = now(), updated_by = $3 WHERE id = $1 RETURNING {_COLUMNS}",
            entry_id, reason, who.subject,
        )
        entry = _entry(row)
        await audit.record(conn, who, "update", RESTRICTED, str(entry_id), _entry(before), entry)
        await audit.notify(conn, RESTRICTED)
    return entry


async def delete_restricted(pool: asyncpg.Pool, who: Principal, entry_id: int) -> RestrictedEntry | None:
    """Remove an entry; None when it does not exist."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(f"DELETE FROM restricted WHERE id = $1 RETURNING {_COLUMNS}", entry_id)
        if row is None:
            return None
        entry = _entry(row)
        await audit.record(conn, who, "delete", RESTRICTED, str(entry_id), entry, None)
        await audit.notify(conn, RESTRICTED)
    return entry


def _switch(row: asyncpg.Record) -> KillSwitch:
    return KillSwitch(account=row["account"], active=row["active"], reason=row["reason"], at=row["at"], set_by=row["set_by"])


async def load_kill_switches(pool: asyncpg.Pool) -> list[KillSwitch]:
    """Every account's kill-switch state."""
    return [_switch(r) for r in await pool.fetch("SELECT account, active, reason, at, set_by FROM kill_switches")]


async def set_kill_switch(pool: asyncpg.Pool, who: Principal, account: str, active: bool, reason: str) -> KillSwitch:
    """Set (or clear) an account's kill switch; audited and notified."""
    now = datetime.now(timezone.utc)
    async with pool.acquire() as conn, conn.transaction():
        before = await conn.fetchrow(
            "SELECT account, active, reason, at, set_by FROM kill_switches WHERE account = $1 FOR UPDATE", account
        )
        row = await conn.fetchrow(
            "INSERT INTO kill_switches (account, active, reason, set_by, at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (account) DO UPDATE SET active = EXCLUDED.active, reason = EXCLUDED.reason,"
            " set_by = EXCLUDED.set_by, at = EXCLUDED.at RETURNING account, active, reason, at, set_by",
            account, active, reason, who.subject, now,
        )
        switch = _switch(row)
        await audit.record(
            conn, who, "create" if before is None else "update", KILL_SWITCH, account,
            None if before is None else _switch(before), switch,
        )
        await audit.notify(conn, KILL_SWITCH)
    return switch
