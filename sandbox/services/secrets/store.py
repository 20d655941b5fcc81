"""PostgreSQL access for key pairs and the audit trail.

Every write runs in one transaction together with its audit record and a
``pg_notify`` on :data:`CHANNEL` (delivered at commit), which every replica's
metadata cache listens to. Key material is handled only as ciphertext here,
except in :func:`reveal`, which returns the plaintext to its caller.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from sandbox.services.kit.errors import ServiceError
from sandbox.services.secrets import crypto
from sandbox.services.secrets.models import MAX_KEYS_PER_ACCOUNT, KrakenKeyCreate, KrakenKeyUpdate

CHANNEL = "secrets_changed"
ALL_ACCOUNTS = "*"  # notify payload meaning "forget every cached account"

_META_COLUMNS = (
    "key_id, account, label, permissions, api_key_last4, api_key_sha256, key_version, created_by, created_at, updated_at"
)


@dataclass(frozen=True)
class Actor:
    """Who performs an action, for the audit trail."""

    subject: str
    kind: str
    request_id: str | None = None


def fingerprint(digest: bytes) -> str:
    """Public fingerprint of an API key from its SHA-256 digest."""
    return "sha256:" + digest.hex()[:16]


def public(row: asyncpg.Record | dict[str, Any]) -> dict[str, Any]:
    """Metadata of one key row as a JSON-ready dict (no secret material)."""
    return {
        "key_id": str(row["key_id"]),
        "account": row["account"],
        "label": row["label"],
        "permissions": list(row["permissions"]),
        "api_key_last4": row["api_key_last4"],
        "fingerprint": fingerprint(row["api_key_sha256"]),
        "key_version": row["key_version"],
        "created_by": row["created_by"],
        "created_at": _iso(row["created_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


def _iso(value: datetime) -> str:
    return value.isoformat()


def payload_bytes(api_key: str, private_key: str) -> bytes:
    """The plaintext sealed for one record."""
    return json.dumps({"api_key": api_key, "private_key": private_key}, separators=(",", ":")).encode()


def parse_payload(raw: bytes) -> tuple[str, str]:
    """(api_key, private_key) from a decrypted payload."""
    doc = json.loads(raw)
    return doc["api_key"], doc["private_key"]


async def audit(
    conn: asyncpg.Connection | asyncpg.Pool,
    actor: Actor,
    action: str,
    outcome: str,
    *,
    account: str | None = None,
    key_id: str | None = None,
    reason: str | None = None,
) -> None:
    """Append one audit record (values are cleaned and truncated: they may come from an unauthenticated caller)."""
    await conn.execute(
        "INSERT INTO audit_events (actor, actor_kind, action, outcome, account, key_id, reason, request_id)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        _clean(actor.subject, 200), _clean(actor.kind, 32), action, outcome,
        _clean(account, 80), _clean(key_id, 80), _clean(reason, 300), actor.request_id,
    )


def _clean(value: str | None, limit: int) -> str | None:
    """Truncate and make storable: PostgreSQL text cannot hold NUL, control characters would garble reports."""
    if value is None:
        return None
    return "".join(ch if ch.isprintable() else "\ufffd" for ch in value[:limit])


async def _notify(conn: asyncpg.Connection, account: str) -> None:
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, account)


async def create_key(
    pool: asyncpg.Pool, ring: crypto.KeyRing, account: str, body: KrakenKeyCreate, actor: Actor, *,
    action: str = "key.create", if_absent: bool = False,
) -> dict[str, Any] | None:
    """Seal and store a key pair; returns its metadata.

    With ``if_absent`` (imports) an existing API key in the account is not an
    error: nothing is written and ``None`` is returned.
    """
    api_key = body.api_key.get_secret_value()
    private_key = body.private_key.get_secret_value()
    key_id = uuid.uuid4()
    digest = hashlib.sha256(api_key.encode()).digest()
    sealed = crypto.seal(ring, payload_bytes(api_key, private_key), key_id, account)
    async with pool.acquire() as conn, conn.transaction():
        # Serialise writers of one account so the per-account limit holds under concurrency.
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 7))", account)
        rows = await conn.fetch("SELECT label, api_key_sha256 FROM kraken_keys WHERE account = $1", account)
        if any(r["api_key_sha256"] == digest for r in rows):
            if if_absent:
                return None
            raise ServiceError(409, "duplicate_api_key", f"account {account!r} already holds this API key")
        if any(r["label"] == body.label for r in rows):
            raise ServiceError(409, "duplicate_label", f"account {account!r} already has a key labelled {body.label!r}")
        if len(rows) >= MAX_KEYS_PER_ACCOUNT:
            raise ServiceError(409, "too_many_keys", f"account {account!r} already holds {MAX_KEYS_PER_ACCOUNT} keys")
        row = await conn.fetchrow(
            "INSERT INTO kraken_keys (key_id, account, label, permissions, api_key_last4, api_key_sha256,"
            " key_version, wrapped_key, ciphertext, created_by)"
            f" VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {_META_COLUMNS}",
            key_id, account, body.label, [p.value for p in body.permissions], api_key[-4:], digest,
            sealed.key_version, sealed.wrapped_key, sealed.ciphertext, actor.subject,
        )
        await audit(conn, actor, action, "success", account=account, key_id=str(key_id))
        await _notify(conn, account)
    return public(row)


async def list_keys(pool: asyncpg.Pool, account: str) -> list[dict[str, Any]]:
    """Metadata of every key of ``account``, oldest first."""
    rows = await pool.fetch(
        f"SELECT {_META_COLUMNS} FROM kraken_keys WHERE account = $1 ORDER BY created_at, key_id", account
    )
    return [public(r) for r in rows]


def _not_found(account: str, key_id: uuid.UUID) -> ServiceError:
    return ServiceError(404, "key_not_found", f"no key {key_id} in account {account!r}")


async def update_key(
    pool: asyncpg.Pool, account: str, key_id: uuid.UUID, body: KrakenKeyUpdate, actor: Actor
) -> dict[str, Any]:
    """Change a key's label and/or permissions; returns the new metadata."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if not changes:
        raise ServiceError(422, "empty_update", "give at least one of label, permissions")
    label = changes.get("label")
    perms = None if body.permissions is None else [p.value for p in body.permissions]
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(
                "UPDATE kraken_keys SET label = COALESCE($3, label), permissions = COALESCE($4, permissions),"
                f" updated_at = now() WHERE account = $1 AND key_id = $2 RETURNING {_META_COLUMNS}",
                account, key_id, label, perms,
            )
        except asyncpg.UniqueViolationError:
            raise ServiceError(409, "duplicate_label", f"account {account!r} already has a key labelled {label!r}") from None
        if row is None:
            raise _not_found(account, key_id)
        await audit(conn, actor, "key.update", "success", account=account, key_id=str(key_id),
                    reason="changed: " + ", ".join(sorted(changes)))
        await _notify(conn, account)
    return public(row)


async def delete_key(pool: asyncpg.Pool, account: str, key_id: uuid.UUID, actor: Actor) -> None:
    """Remove a key pair for good (its ciphertext is deleted, the audit trail stays)."""
    async with pool.acquire() as conn, conn.transaction():
        deleted = await conn.fetchval(
            "DELETE FROM kraken_keys WHERE account = $1 AND key_id = $2 RETURNING key_id", account, key_id
        )
        if deleted is None:
            raise _not_found(account, key_id)
        await audit(conn, actor, "key.delete", "success", account=account, key_id=str(key_id))
        await _notify(conn, account)


@dataclass(frozen=True)
class Revealed:
    """Plaintext of one key pair, returned only to an authorised service identity."""

    key_id: uuid.UUID
    account: str
    label: str
    api_key: str
    private_key: str
    permissions: list[str]
    key_version: int

    def __repr__(self) -> str:
        return f"Revealed(key_id={self.key_id}, account={self.account!r}, key_version={self.key_version})"


async def reveal(pool: asyncpg.Pool, ring: crypto.KeyRing, account: str, key_id: uuid.UUID, actor: Actor) -> Revealed:
    """Decrypt one key pair, writing its ``success`` audit record in the same transaction (no record, no secret).

    Failures (unknown key, integrity error, missing key version) are audited as
    ``failed`` in their own transaction and raised as :class:`ServiceError`.
    """
    async with pool.acquire() as conn:
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT key_id, account, label, permissions, key_version, wrapped_key, ciphertext"
                " FROM kraken_keys WHERE account = $1 AND key_id = $2",
                account, key_id,
            )
            failure: ServiceError | None = None
            if row is None:
                failure = _not_found(account, key_id)
            else:
                sealed = crypto.Sealed(row["key_version"], row["wrapped_key"], row["ciphertext"])
                try:
                    api_key, private_key = parse_payload(crypto.open_sealed(ring, sealed, key_id, account))
                except crypto.UnknownKeyVersion as exc:
                    failure = ServiceError(
                        503, "key_version_unavailable",
                        f"key {key_id} is sealed under master key version {exc.version}, which this replica's"
                        " key ring lacks; add it to SECRETS_ENCRYPTION_KEY",
                        headers={"Retry-After": "5"},
                    )
                except (crypto.IntegrityError, ValueError, KeyError):
                    failure = integrity_error(key_id)
            if failure is None:
                await audit(conn, actor, "key.reveal", "success", account=account, key_id=str(key_id))
                return Revealed(key_id, account, row["label"], api_key, private_key, list(row["permissions"]),
                                row["key_version"])
        await audit(conn, actor, "key.reveal", "failed", account=account, key_id=str(key_id), reason=failure.code)
        raise failure


def integrity_error(key_id: uuid.UUID) -> ServiceError:
    """The error for a ciphertext that fails authentication."""
    return ServiceError(
        409, "integrity_error",
        f"the stored ciphertext of key {key_id} failed authentication: it was altered or sealed under"
        " another key; the record cannot be used and should be deleted and re-created",
    )


async def records_by_version(pool: asyncpg.Pool) -> dict[int, int]:
    """How many records each master-key version seals."""
    rows = await pool.fetch("SELECT key_version, count(*) AS n FROM kraken_keys GROUP BY key_version")
    return {r["key_version"]: r["n"] for r in rows}


async def query_audit(
    pool: asyncpg.Pool, *, account: str | None, key_id: str | None, action: str | None, outcome: str | None,
    actor: str | None, since: datetime | None, until: datetime | None, before_id: int | None, limit: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of audit records matching every given filter, newest first, and the next cursor."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("account", account), ("key_id", key_id), ("action", action), ("outcome", outcome),
                          ("actor", actor)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    for op, value in ((">=", since), ("<", until)):
        if value is not None:
            args.append(value)
            clauses.append(f"ts {op} ${len(args)}")
    if before_id is not None:
        args.append(before_id)
        clauses.append(f"id < ${len(args)}")
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    args.append(limit + 1)
    rows = await pool.fetch(
        "SELECT id, ts, actor, actor_kind, action, outcome, account, key_id, reason, request_id"
        f" FROM audit_events {where} ORDER BY id DESC LIMIT ${len(args)}",
        *args,
    )
    items = [dict(r) for r in rows[:limit]]
    return items, (items[-1]["id"] if len(rows) > limit else None)
