"""SQL of universe-service: loading the snapshot, applying a sync plan, decisions, audit.

Every write runs in one transaction that also bumps ``universe_revision`` and
sends ``NOTIFY universe_changed`` (delivered at commit), so other replicas
reload their caches; a failed write leaves nothing behind.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import asyncpg

from sandbox.services.universe.cache import InstrumentRecord
from sandbox.services.universe.venue_pairs import FeeTier, StoredPair, SyncPlan, VenuePair, plain

#: PostgreSQL channel announcing a new revision (the payload is the revision number).
CHANNEL = "universe_changed"
#: Advisory-lock key serialising syncs across replicas ("univsync").
SYNC_LOCK_KEY = 0x756E6976_73796E63

_COLUMNS = """pair_key, symbol, altname, base, quote, venue_base, venue_quote, ordermin, costmin, tick_size,
    pair_decimals, lot_decimals, cost_decimals, lot_multiplier, status, fee_volume_currency,
    fees_taker, fees_maker"""


def _tiers_json(tiers: Sequence[FeeTier]) -> str:
    return json.dumps([[plain(t.volume), plain(t.percent)] for t in tiers])


def _tiers_from(value: Any) -> tuple[FeeTier, ...]:
    data = json.loads(value) if isinstance(value, str) else value
    return tuple(FeeTier(Decimal(v), Decimal(p)) for v, p in data)


def _pair_args(p: VenuePair) -> tuple[Any, ...]:
    return (
        p.pair_key, p.symbol, p.altname, p.base, p.quote, p.venue_base, p.venue_quote, p.ordermin, p.costmin,
        p.tick_size, p.pair_decimals, p.lot_decimals, p.cost_decimals, p.lot_multiplier, p.status,
        p.fee_volume_currency, _tiers_json(p.fees_taker), _tiers_json(p.fees_maker),
    )


def pair_from_row(row: asyncpg.Record) -> VenuePair:
    """The venue fields of an ``instruments`` row."""
    return VenuePair(
        pair_key=row["pair_key"], symbol=row["symbol"], altname=row["altname"], base=row["base"],
        quote=row["quote"], venue_base=row["venue_base"], venue_quote=row["venue_quote"],
        ordermin=row["ordermin"], costmin=row["costmin"], tick_size=row["tick_size"],
        pair_decimals=row["pair_decimals"], lot_decimals=row["lot_decimals"],
        cost_decimals=row["cost_decimals"], lot_multiplier=row["lot_multiplier"], status=row["status"],
        fee_volume_currency=row["fee_volume_currency"],
        fees_taker=_tiers_from(row["fees_taker"]), fees_maker=_tiers_from(row["fees_maker"]),
    )


def record_from_row(row: asyncpg.Record) -> InstrumentRecord:
    """An :class:`InstrumentRecord` from an ``instruments`` row."""
    return InstrumentRecord(
        pair=pair_from_row(row), listed=row["listed"], approval=row["approval"],
        approval_reason=row["approval_reason"], approval_by=row["approval_by"], approval_at=row["approval_at"],
        first_seen_at=row["first_seen_at"], synced_at=row["synced_at"], updated_at=row["updated_at"],
    )


async def load_all(pool: asyncpg.Pool) -> tuple[list[InstrumentRecord], int]:
    """Every instrument and the revision they belong to (one consistent snapshot)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        revision = await conn.fetchval("SELECT revision FROM universe_revision")
        rows = await conn.fetch("SELECT * FROM instruments")
    return [record_from_row(r) for r in rows], int(revision)


async def current_revision(pool: asyncpg.Pool) -> int:
    """The database's revision counter."""
    return int(await pool.fetchval("SELECT revision FROM universe_revision"))


async def _bump(conn: asyncpg.Connection) -> int:
    revision = await conn.fetchval("UPDATE universe_revision SET revision = revision + 1 RETURNING revision")
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, str(revision))
    return int(revision)


async def _audit(conn: asyncpg.Connection, rows: list[tuple[Any, ...]]) -> None:
    if rows:
        await conn.executemany(
            """INSERT INTO instrument_audit
               (pair_key, symbol, action, actor, reason, changes, approval_before, approval_after)
               VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8)""",
            rows,
        )


async def stored_pairs(conn: asyncpg.Connection) -> dict[str, StoredPair]:
    """Every instrument's venue fields and listing, for planning a sync."""
    rows = await conn.fetch("SELECT * FROM instruments")
    return {r["pair_key"]: StoredPair(pair_from_row(r), r["listed"]) for r in rows}


async def apply_plan(conn: asyncpg.Connection, plan: SyncPlan, actor: str, now: datetime) -> int | None:
    """Write a sync plan (inside the caller's transaction); the new revision, or None when nothing changed.

    Delistings go first so a pair re-listed under a new key can take over its
    old symbol (names are unique among listed instruments only).
    """
    audit: list[tuple[Any, ...]] = []
    if plan.delisted:
        await conn.executemany(
            "UPDATE instruments SET listed = false, synced_at = $2, updated_at = $2 WHERE pair_key = $1",
            [(p.pair_key, now) for p in plan.delisted],
        )
        audit += [(p.pair_key, p.symbol, "delisted", actor, None, "{}", None, None) for p in plan.delisted]
    if plan.updated:
        await conn.executemany(
            f"""UPDATE instruments SET ({_COLUMNS}, listed, synced_at, updated_at) =
                ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb, $18::jsonb,
                 true, $19, $19)
                WHERE pair_key = $1""",
            [(*_pair_args(p), now) for p, _ in plan.updated],
        )
        audit += [
            (p.pair_key, p.symbol, "relisted" if p.pair_key in plan.relisted else "updated", actor, None,
             json.dumps(changes), None, None)
            for p, changes in plan.updated
        ]
    if plan.added:
        await conn.executemany(
            f"""INSERT INTO instruments ({_COLUMNS}, first_seen_at, synced_at, updated_at)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17::jsonb,
                        $18::jsonb, $19, $19, $19)""",
            [(*_pair_args(p), now) for p in plan.added],
        )
        audit += [
            (p.pair_key, p.symbol, "listed", actor, None, json.dumps(p.comparable()), None, "pending")
            for p in plan.added
        ]
    if plan.unchanged:
        await conn.execute(
            "UPDATE instruments SET synced_at = $2 WHERE pair_key = ANY($1::text[])", plan.unchanged, now
        )
    await _audit(conn, audit)
    return await _bump(conn) if plan.changes else None


async def record_sync_run(conn: asyncpg.Connection | asyncpg.Pool, report: dict[str, Any]) -> int:
    """Store one sync outcome (``report`` has the SyncReport fields); its id."""
    return int(
        await conn.fetchval(
            """INSERT INTO sync_runs (trigger, actor, outcome, added, updated, unchanged, delisted, total,
                                      skipped, error, started_at, finished_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11, $12) RETURNING id""",
            report["trigger"], report["actor"], report["outcome"], report["added"], report["updated"],
            report["unchanged"], report["delisted"], report["total"],
            json.dumps([{"pair_key": s.pair_key, "reason": s.reason} for s in report["skipped"]]),
            report["error"], report["started_at"], report["finished_at"],
        )
    )


async def recent_sync_runs(pool: asyncpg.Pool, limit: int) -> list[dict[str, Any]]:
    """The latest ``limit`` sync runs, newest first."""
    rows = await pool.fetch("SELECT * FROM sync_runs ORDER BY id DESC LIMIT $1", limit)
    out = []
    for r in rows:
        d = dict(r)
        d["skipped"] = json.loads(d["skipped"]) if isinstance(d["skipped"], str) else d["skipped"]
        d["duration_ms"] = round((d["finished_at"] - d["started_at"]).total_seconds() * 1000, 3)
        out.append(d)
    return out


async def decide(
    pool: asyncpg.Pool, pair_key: str, decision: str, reason: str, actor: str
) -> tuple[InstrumentRecord, int] | None:
    """Set an instrument's approval (``approved`` / ``excluded``) with an audit record, atomically.

    Returns the updated record and the new revision, or None when the pair is
    unknown.  Raises ``LookupError`` when approving a delisted instrument.
    """
    action = {"approved": "approved", "excluded": "excluded"}[decision]
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT * FROM instruments WHERE pair_key = $1 FOR UPDATE", pair_key)
        if row is None:
            return None
        if decision == "approved" and not row["listed"]:
            raise LookupError(f"{row['symbol']} is no longer listed by the venue")
        updated = await conn.fetchrow(
            """UPDATE instruments SET approval = $2, approval_reason = $3, approval_by = $4,
                      approval_at = now(), updated_at = now()
               WHERE pair_key = $1 RETURNING *""",
            pair_key, decision, reason, actor,
        )
        await _audit(conn, [(pair_key, row["symbol"], action, actor, reason, "{}", row["approval"], decision)])
        revision = await _bump(conn)
    return record_from_row(updated), revision


async def audit_trail(pool: asyncpg.Pool, pair_key: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
    """Audit records of one instrument, newest first (``before``: only ids below it)."""
    rows = await pool.fetch(
        """SELECT id, symbol, pair_key, action, actor, reason, changes, approval_before, approval_after, at
           FROM instrument_audit
           WHERE pair_key = $1 AND ($2::bigint IS NULL OR id < $2)
           ORDER BY id DESC LIMIT $3""",
        pair_key, before, limit,
    )
    out = []
    for r in rows:
        d = dict(r)
        d["changes"] = json.loads(d["changes"]) if isinstance(d["changes"], str) else d["changes"]
        out.append(d)
    return out

