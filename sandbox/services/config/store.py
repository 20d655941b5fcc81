"""PostgreSQL access for config-service: versioned writes and the queries behind reads.

Every write runs in one transaction that first takes a transaction-scoped
advisory lock shared by all writers. Serialising writes this way (they are
rare; reads never take it) gives two guarantees at once: the check of the
expected version and the new version cannot interleave with another writer,
and change sequence numbers are allocated in commit order, so a replica that
has seen ``seq`` N has seen every change up to N (see :mod:`.index`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from sandbox.services.config.index import KeyState
from sandbox.services.config.render import Version

#: Advisory lock key serialising config writes ("config-w" as a 64-bit number).
WRITE_LOCK = 0x636F6E6669672D77


@dataclass(frozen=True, slots=True)
class Conflict:
    """A write whose expected version is not the current one."""

    current_version: int  # 0 when the key never existed
    exists: bool  # False when the key never existed or is deleted


@dataclass(frozen=True, slots=True)
class Written:
    """A committed change: the new version and its change sequence."""

    version: Version
    seq: int
    previous_version: int


_CURRENT = "SELECT version, deleted FROM config_entries WHERE namespace = $1 AND key = $2"

_INSERT_HISTORY = """
INSERT INTO config_history (namespace, key, version, op, value, changed_by)
VALUES ($1, $2, $3, $4, $5::jsonb, $6)
RETURNING seq, changed_at, value::text
"""

_UPSERT_ENTRY = """
INSERT INTO config_entries (namespace, key, version, deleted, changed_by, changed_at, seq)
VALUES ($1, $2, $3, $4, $5, $6, $7)
ON CONFLICT (namespace, key) DO UPDATE
SET version = EXCLUDED.version, deleted = EXCLUDED.deleted, changed_by = EXCLUDED.changed_by,
    changed_at = EXCLUDED.changed_at, seq = EXCLUDED.seq
"""


def _acceptable(expected: int, current: int, exists: bool, deleting: bool) -> bool:
    """Whether ``expected`` names the state the writer saw.

    A live key must be named by its version. An absent key (never written, or
    deleted) is named by 0 or by its tombstone version; it cannot be deleted.
    """
    if exists:
        return expected == current
    if deleting:
        return False
    return expected == 0 or expected == current


async def write(
    pool: asyncpg.Pool,
    namespace: str,
    key: str,
    *,
    value_text: str | None,
    expected: int,
    changed_by: str,
) -> Written | Conflict:
    """Write a value (``value_text`` JSON) or delete (``value_text`` None) if ``expected`` is current."""
    deleting = value_text is None
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", WRITE_LOCK)
        row = await conn.fetchrow(_CURRENT, namespace, key)
        current = row["version"] if row else 0
        exists = bool(row) and not row["deleted"]
        if not _acceptable(expected, current, exists, deleting):
            return Conflict(current, exists)
        op = "delete" if deleting else ("update" if exists else "create")
        new_version = current + 1
        hist = await conn.fetchrow(_INSERT_HISTORY, namespace, key, new_version, op, value_text, changed_by)
        await conn.execute(
            _UPSERT_ENTRY, namespace, key, new_version, deleting, changed_by, hist["changed_at"], hist["seq"]
        )
    version = Version(namespace, key, new_version, op, hist["value"], changed_by, hist["changed_at"])
    return Written(version, hist["seq"], current)


async def changes_since(pool: asyncpg.Pool, seq: int) -> list[tuple[str, str, KeyState]]:
    """Current state of every key changed after change sequence ``seq``, in sequence order."""
    rows = await pool.fetch(
        "SELECT namespace, key, version, deleted, seq FROM config_entries WHERE seq > $1 ORDER BY seq", seq
    )
    return [(r["namespace"], r["key"], KeyState(r["version"], r["deleted"], r["seq"])) for r in rows]


async def fetch_versions(pool: asyncpg.Pool, namespace: str, wanted: Sequence[tuple[str, int]]) -> list[Version]:
    """The stored versions ``(key, version)`` of ``namespace`` that exist (any order)."""
    if not wanted:
        return []
    rows = await pool.fetch(
        """
        SELECT h.key, h.version, h.op, h.value::text AS value, h.changed_by, h.changed_at
        FROM config_history h
        JOIN unnest($2::text[], $3::bigint[]) AS w(key, version) ON h.key = w.key AND h.version = w.version
        WHERE h.namespace = $1
        """,
        namespace,
        [k for k, _ in wanted],
        [v for _, v in wanted],
    )
    return [_version(namespace, r) for r in rows]


async def history(
    pool: asyncpg.Pool, namespace: str, key: str, *, before: int | None, limit: int
) -> list[Version]:
    """Versions of a key newest first, older than ``before`` when given, at most ``limit``."""
    rows = await pool.fetch(
        """
        SELECT key, version, op, value::text AS value, changed_by, changed_at
        FROM config_history
        WHERE namespace = $1 AND key = $2 AND ($3::bigint IS NULL OR version < $3)
        ORDER BY version DESC
        LIMIT $4
        """,
        namespace,
        key,
        before,
        limit,
    )
    return [_version(namespace, r) for r in rows]


def _version(namespace: str, row: asyncpg.Record) -> Version:
    return Version(namespace, row["key"], row["version"], row["op"], row["value"], row["changed_by"], row["changed_at"])
