"""Account rules in PostgreSQL: load, create-or-replace, delete, each write audited in one transaction.

Writes to one account are serialised with a transaction-scoped advisory lock;
each write bumps ``rules_revision`` and sends ``NOTIFY policy_rules_changed``
with ``"<revision> <account>"`` so every replica refreshes its cache. Versions
grow per account across deletions (the audit trail never repeats a version).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg

from sandbox.services.kit.errors import ServiceError
from sandbox.services.policy.account_rules import AccountRules
from sandbox.services.policy.numbers import plain

CHANNEL = "policy_rules_changed"

_COLUMNS = "account, allowed_symbols, max_order_notional, version, created_at, updated_at, updated_by"


@dataclass(frozen=True)
class WriteResult:
    """Outcome of a rules write."""

    rules: AccountRules | None
    created: bool
    revision: int


def _limits(raw: str | None) -> dict[str, Decimal] | None:
    if raw is None:
        return None
    doc = json.loads(raw)
    return {k: Decimal(v) for k, v in doc.items()}


def row_to_rules(row: Mapping[str, Any]) -> AccountRules:
    """An :class:`AccountRules` from an ``account_rules`` row."""
    symbols = row["allowed_symbols"]
    return AccountRules.build(
        row["account"], None if symbols is None else list(symbols), _limits(row["max_order_notional"]),
        row["version"], created_at=row["created_at"], updated_at=row["updated_at"], updated_by=row["updated_by"],
    )


async def current_revision(pool: asyncpg.Pool) -> int:
    """The rules revision (bumped by every write)."""
    return int(await pool.fetchval("SELECT revision FROM rules_revision"))


async def load_all(pool: asyncpg.Pool) -> tuple[list[AccountRules], int]:
    """Every account's rules and the revision they reflect (one consistent snapshot)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        revision = int(await conn.fetchval("SELECT revision FROM rules_revision"))
        rows = await conn.fetch(f"SELECT {_COLUMNS} FROM account_rules ORDER BY account")
    return [row_to_rules(r) for r in rows], revision


async def load_one(pool: asyncpg.Pool, account: str) -> AccountRules | None:
    """One account's rules, or None."""
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM account_rules WHERE account = $1", account)
    return None if row is None else row_to_rules(row)


def _check_version(current: AccountRules | None, if_match: int | None) -> None:
    if if_match is None:
        return
    have = current.version if current is not None else None
    if have != if_match:
        raise ServiceError(
            412, "version_mismatch",
            f"If-Match {if_match} does not match the current version ({have if have is not None else 'no rules'})",
            detail={"current_version": have},
        )


async def _bump(conn: asyncpg.Connection, account: str) -> int:
    revision = int(await conn.fetchval("UPDATE rules_revision SET revision = revision + 1 RETURNING revision"))
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, f"{revision} {account}")
    return revision


async def _audit(conn: asyncpg.Connection, account: str, action: str, actor: str, reason: str | None,
                 before: AccountRules | None, after: AccountRules | None, version: int, request_id: str | None) -> None:
    await conn.execute(
        "INSERT INTO rules_audit (account, action, actor, reason, before, after, version, request_id)"
        " VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, $8)",
        account, action, actor, reason,
        None if before is None else json.dumps(before.document()),
        None if after is None else json.dumps(after.document()),
        version, request_id,
    )


async def put_rules(
    pool: asyncpg.Pool,
    account: str,
    allowed_symbols: list[str] | None,
    max_order_notional: Mapping[str, Decimal] | None,
    *,
    actor: str,
    reason: str | None,
    request_id: str | None,
    if_match: int | None = None,
) -> WriteResult:
    """Create or replace the account's rules (audited); 412 when ``if_match`` is not the current version."""
    limits = None if max_order_notional is None else json.dumps({k: plain(v) for k, v in max_order_notional.items()})
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('policy.rules:' || $1))", account)
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM account_rules WHERE account = $1", account)
        before = None if row is None else row_to_rules(row)
        _check_version(before, if_match)
        if before is None:
            version = int(await conn.fetchval(
                "SELECT coalesce(max(version), 0) + 1 FROM rules_audit WHERE account = $1", account))
            row = await conn.fetchrow(
                "INSERT INTO account_rules (account, allowed_symbols, max_order_notional, version, updated_by)"
                f" VALUES ($1, $2, $3::jsonb, $4, $5) RETURNING {_COLUMNS}",
                account, allowed_symbols, limits, version, actor,
            )
        else:
            row = await conn.fetchrow(
                "UPDATE account_rules SET allowed_symbols = $2, max_order_notional = $3::jsonb,"
                " version = version + 1, updated_at = now(), updated_by = $4"
                f" WHERE account = $1 RETURNING {_COLUMNS}",
                account, allowed_symbols, limits, actor,
            )
        after = row_to_rules(row)
        await _audit(conn, account, "created" if before is None else "replaced", actor, reason, before, after,
                     after.version, request_id)
        revision = await _bump(conn, account)
    return WriteResult(after, before is None, revision)


async def delete_rules(
    pool: asyncpg.Pool, account: str, *, actor: str, reason: str | None, request_id: str | None,
    if_match: int | None = None,
) -> WriteResult:
    """Delete the account's rules (audited); 404 when it has none."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('policy.rules:' || $1))", account)
        row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM account_rules WHERE account = $1", account)
        if row is None:
            raise ServiceError(404, "rules_not_found", f"account {account!r} has no rules")
        before = row_to_rules(row)
        _check_version(before, if_match)
        await conn.execute("DELETE FROM account_rules WHERE account = $1", account)
        await _audit(conn, account, "deleted", actor, reason, before, None, before.version + 1, request_id)
        revision = await _bump(conn, account)
    return WriteResult(None, False, revision)


async def audit_trail(pool: asyncpg.Pool, account: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
    """The account's audit entries, newest first (ids below ``before`` when given)."""
    rows = await pool.fetch(
        "SELECT id, account, action, actor, reason, before, after, version, request_id, at FROM rules_audit"
        " WHERE account = $1 AND ($2::bigint IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
        account, before, limit,
    )
    out = []
    for r in rows:
        doc = dict(r)
        doc["before"] = None if r["before"] is None else json.loads(r["before"])
        doc["after"] = None if r["after"] is None else json.loads(r["after"])
        out.append(doc)
    return out
