"""Fills, positions and marks in the diversification database.

:func:`record_fills` applies a batch in one transaction: fills are inserted
idempotently (``fill_id`` is the key, so Kafka redeliveries are no-ops), the
positions they touch are locked in a fixed order (replicas consuming other
partitions cannot deadlock on them), moved, and the marks follow the fill
prices. A ``pg_notify`` tells the other replicas which rows to reload.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from decimal import Decimal

import asyncpg

from sandbox.services.kit.auth import Principal
from sandbox.services.risk import audit
from sandbox.services.risk.positions import Fill, Mark, Position, apply_fill, next_mark

MARK = "mark"
#: NOTIFY payloads stay well below PostgreSQL's 8000-byte limit; bigger batches ask for a full reload.
MAX_NOTIFY_BYTES = 7000

_POSITION_COLUMNS = (
    "account, symbol, qty, avg_cost, realised, fees, day, day_open_qty, day_cash, day_realised, version, updated_at"
)
_MARK_COLUMNS = "symbol, price, at, day, day_open, source"


def position_from_row(row: asyncpg.Record) -> Position:
    """A :class:`Position` from a ``positions`` row."""
    return Position(**dict(row))


def mark_from_row(row: asyncpg.Record) -> Mark:
    """A :class:`Mark` from a ``marks`` row."""
    return Mark(**dict(row))


@dataclass
class BatchResult:
    """What a batch of fills did."""

    recorded: int = 0
    duplicates: int = 0
    positions: list[Position] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)


def changes_payload(positions: Iterable[Position], marks: Iterable[Mark]) -> str:
    """The NOTIFY payload naming changed rows (``positions:*`` when it would be too long)."""
    doc = {"p": [[p.account, p.symbol] for p in positions], "m": [m.symbol for m in marks]}
    text = "positions:" + json.dumps(doc, separators=(",", ":"))
    return text if len(text.encode()) <= MAX_NOTIFY_BYTES else "positions:*"


async def record_fills(pool: asyncpg.Pool, fills: Sequence[Fill]) -> BatchResult:
    """Record a batch of fills idempotently and move positions and marks (one transaction)."""
    unique: dict[str, Fill] = {}
    for f in fills:
        unique.setdefault(f.fill_id, f)
    batch = list(unique.values())
    result = BatchResult(duplicates=len(fills) - len(batch))
    async with pool.acquire() as conn, conn.transaction():
        inserted = {
            r["fill_id"]
            for r in await conn.fetch(
                "INSERT INTO fills (fill_id, order_id, account, strategy, symbol, side, qty, price, fee,"
                " fee_currency, ts) SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],"
                " $5::text[], $6::text[], $7::numeric[], $8::numeric[], $9::numeric[], $10::text[],"
                " $11::timestamptz[]) ON CONFLICT (fill_id) DO NOTHING RETURNING fill_id",
                [f.fill_id for f in batch], [f.order_id for f in batch],
                [f.account for f in batch], [f.strategy for f in batch], [f.symbol for f in batch],
                [f.side for f in batch], [f.qty for f in batch], [f.price for f in batch],
                [f.fee for f in batch], [f.fee_currency for f in batch], [f.ts for f in batch],
            )
        }
        new = [f for f in batch if f.fill_id in inserted]
        result.recorded = len(new)
        result.duplicates += len(batch) - len(new)
        if not new:
            return result
        result.positions = await _move_positions(conn, new)
        result.marks = await _move_marks(conn, new)
        await audit.notify(conn, changes_payload(result.positions, result.marks))
    return result


async def _move_positions(conn: asyncpg.Connection, fills: list[Fill]) -> list[Position]:
    keys = sorted({(f.account, f.symbol) for f in fills})
    accounts, symbols = [k[0] for k in keys], [k[1] for k in keys]
    await conn.execute(
        "INSERT INTO positions (account, symbol) SELECT a, s FROM unnest($1::text[], $2::text[]) AS k(a, s)"
        " ORDER BY a, s ON CONFLICT DO NOTHING",
        accounts, symbols,
    )
    rows = await conn.fetch(
        f"SELECT {_POSITION_COLUMNS} FROM positions WHERE (account, symbol) IN"
        " (SELECT a, s FROM unnest($1::text[], $2::text[]) AS k(a, s)) ORDER BY account, symbol FOR UPDATE",
        accounts, symbols,
    )
    current = {(r["account"], r["symbol"]): position_from_row(r) for r in rows}
    for f in fills:
        key = (f.account, f.symbol)
        current[key] = apply_fill(current[key], f)
    now = datetime.now(timezone.utc)
    await conn.executemany(
        "UPDATE positions SET qty = $3, avg_cost = $4, realised = $5, fees = $6, day = $7, day_open_qty = $8,"
        " day_cash = $9, day_realised = $10, version = $11, updated_at = $12 WHERE account = $1 AND symbol = $2",
        [
            (p.account, p.symbol, p.qty, p.avg_cost, p.realised, p.fees, p.day, p.day_open_qty, p.day_cash,
             p.day_realised, p.version, now)
            for p in current.values()
        ],
    )
    return [replace(p, updated_at=now) for p in current.values()]


async def _move_marks(conn: asyncpg.Connection, fills: list[Fill]) -> list[Mark]:
    symbols = sorted({f.symbol for f in fills})
    rows = await conn.fetch(
        f"SELECT {_MARK_COLUMNS} FROM marks WHERE symbol = ANY($1::text[]) ORDER BY symbol FOR UPDATE", symbols
    )
    marks: dict[str, Mark] = {r["symbol"]: mark_from_row(r) for r in rows}
    changed: dict[str, Mark] = {}
    for f in fills:
        moved = next_mark(marks.get(f.symbol), f.symbol, f.price, f.ts, "fill")
        if moved is not None:
            marks[f.symbol] = changed[f.symbol] = moved
    await _upsert_marks(conn, changed.values())
    return list(changed.values())


async def _upsert_marks(conn: asyncpg.Connection, marks: Iterable[Mark]) -> None:
    await conn.executemany(
        "INSERT INTO marks (symbol, price, at, day, day_open, source) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (symbol) DO UPDATE SET price = EXCLUDED.price, at = EXCLUDED.at, day = EXCLUDED.day,"
        " day_open = EXCLUDED.day_open, source = EXCLUDED.source WHERE marks.at <= EXCLUDED.at",
        [(m.symbol, m.price, m.at, m.day, m.day_open, m.source) for m in marks],
    )


async def put_mark(pool: asyncpg.Pool, who: Principal, symbol: str, price: Decimal) -> Mark:
    """Set a symbol's mark by hand (now); audited and notified."""
    now = datetime.now(timezone.utc)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(f"SELECT {_MARK_COLUMNS} FROM marks WHERE symbol = $1 FOR UPDATE", symbol)
        before = mark_from_row(row) if row is not None else None
        # A manual mark is "now": never older than the stored one, even with clock skew between replicas.
        at = max(now, before.at) if before is not None else now
        mark = next_mark(before, symbol, price, at, "manual")
        assert mark is not None
        await _upsert_marks(conn, [mark])
        await audit.record(conn, who, "create" if before is None else "update", MARK, symbol, before, mark)
        await audit.notify(conn, changes_payload([], [mark]))
    return mark


async def load_positions(pool: asyncpg.Pool, keys: Sequence[tuple[str, str]] | None = None) -> list[Position]:
    """Every position, or those of ``keys``."""
    if keys is None:
        rows = await pool.fetch(f"SELECT {_POSITION_COLUMNS} FROM positions")
    else:
        rows = await pool.fetch(
            f"SELECT {_POSITION_COLUMNS} FROM positions WHERE (account, symbol) IN"
            " (SELECT a, s FROM unnest($1::text[], $2::text[]) AS k(a, s))",
            [k[0] for k in keys], [k[1] for k in keys],
        )
    return [position_from_row(r) for r in rows]


async def load_marks(pool: asyncpg.Pool, symbols: Sequence[str] | None = None) -> list[Mark]:
    """Every mark, or those of ``symbols``."""
    if symbols is None:
        rows = await pool.fetch(f"SELECT {_MARK_COLUMNS} FROM marks")
    else:
        rows = await pool.fetch(f"SELECT {_MARK_COLUMNS} FROM marks WHERE symbol = ANY($1::text[])", list(symbols))
    return [mark_from_row(r) for r in rows]
