"""The audit trail: one ``audit_log`` row per dataset change, written in the change's transaction.

Every dataset database has its own ``audit_log``; :func:`query` reads one or
merges all three (newest first). Changes also ``pg_notify`` the dataset's
channel in the same transaction, so every replica reloads after the commit.
"""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from sandbox.services.kit.auth import Principal
from sandbox.services.kit.logs import request_id_var
from sandbox.services.risk.numbers import plain

#: The NOTIFY channel of every dataset database.
CHANNEL = "risk_changes"
DATASETS = ("compliance", "esg", "diversification")


def jsonable(value: Any) -> Any:
    """``value`` with Decimals as plain strings and datetimes as ISO 8601 (dataclasses as dicts)."""
    if is_dataclass(value) and not isinstance(value, type):
        value = asdict(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if not str(k).startswith("_")}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return plain(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


async def record(
    conn: asyncpg.Connection,
    who: Principal,
    action: str,
    entity: str,
    key: str,
    before: Any = None,
    after: Any = None,
) -> None:
    """Write one audit row (call inside the change's transaction)."""
    await conn.execute(
        "INSERT INTO audit_log (actor, actor_kind, action, entity, key, before, after, request_id)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8)",
        who.subject, who.kind, action, entity, key,
        None if before is None else json.dumps(jsonable(before)),
        None if after is None else json.dumps(jsonable(after)),
        request_id_var.get(None),
    )


async def notify(conn: asyncpg.Connection, payload: str) -> None:
    """Tell every replica (after commit) that ``payload`` changed."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)


async def query(
    pools: dict[str, asyncpg.Pool],
    *,
    dataset: str | None = None,
    entity: str | None = None,
    key: str | None = None,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Audit rows matching the filters, newest first, from one dataset or merged from all."""
    where, args = [], []
    for column, value in (("entity", entity), ("key", key), ("actor", actor)):
        if value is not None:
            args.append(value)
            where.append(f"{column} = ${len(args)}")
    if since is not None:
        args.append(since)
        where.append(f"at >= ${len(args)}")
    if until is not None:
        args.append(until)
        where.append(f"at < ${len(args)}")
    args.append(limit)
    sql = (
        "SELECT id, at, actor, actor_kind, action, entity, key, before::text AS before, after::text AS after,"
        " request_id FROM audit_log"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" ORDER BY at DESC, id DESC LIMIT ${len(args)}"
    )
    rows: list[dict[str, Any]] = []
    for name in (dataset,) if dataset else DATASETS:
        for row in await pools[name].fetch(sql, *args):
            doc = dict(row)
            doc["dataset"] = name
            doc["before"] = json.loads(doc["before"]) if doc["before"] else None
            doc["after"] = json.loads(doc["after"]) if doc["after"] else None
            rows.append(doc)
    rows.sort(key=lambda r: (r["at"], r["id"]), reverse=True)
    return rows[:limit]
