"""User records in PostgreSQL (single-statement writes: never a partial write)."""

from __future__ import annotations

from typing import Any

import asyncpg

from sandbox.services.auth.passwords import hash_password

_COLUMNS = "username, roles, disabled, created_at, updated_at"


def public(row: asyncpg.Record) -> dict[str, Any]:
    """A user row as the public shape (no hash)."""
    return {k: (list(row[k]) if k == "roles" else row[k]) for k in ("username", "roles", "disabled", "created_at", "updated_at")}


async def get_with_hash(pool: asyncpg.Pool, username: str) -> asyncpg.Record | None:
    """The user row including ``password_hash`` (for login)."""
    return await pool.fetchrow(f"SELECT {_COLUMNS}, password_hash FROM users WHERE username = $1", username)


async def get(pool: asyncpg.Pool, username: str) -> asyncpg.Record | None:
    """The user row without the hash."""
    return await pool.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE username = $1", username)


async def create(pool: asyncpg.Pool, username: str, password: str, roles: list[str], disabled: bool = False) -> asyncpg.Record | None:
    """Insert a user; None when the username is taken."""
    password_hash = await hash_password(password)
    return await pool.fetchrow(
        f"INSERT INTO users (username, password_hash, roles, disabled) VALUES ($1, $2, $3, $4) "
        f"ON CONFLICT (username) DO NOTHING RETURNING {_COLUMNS}",
        username, password_hash, roles, disabled,
    )


async def list_users(pool: asyncpg.Pool, limit: int, offset: int) -> list[asyncpg.Record]:
    """A page of users ordered by name."""
    return await pool.fetch(f"SELECT {_COLUMNS} FROM users ORDER BY username LIMIT $1 OFFSET $2", limit, offset)


async def update(
    pool: asyncpg.Pool, username: str, *, roles: list[str] | None, disabled: bool | None, password: str | None
) -> asyncpg.Record | None:
    """Apply the given changes in one statement; None when the user does not exist."""
    password_hash = await hash_password(password) if password is not None else None
    return await pool.fetchrow(
        f"UPDATE users SET roles = COALESCE($2, roles), disabled = COALESCE($3, disabled), "
        f"password_hash = COALESCE($4, password_hash), updated_at = now() WHERE username = $1 RETURNING {_COLUMNS}",
        username, roles, disabled, password_hash,
    )


async def set_hash(pool: asyncpg.Pool, username: str, password_hash: str) -> None:
    """Replace a password hash (rehash with current parameters after a login)."""
    await pool.execute("UPDATE users SET password_hash = $2 WHERE username = $1", username, password_hash)


async def ensure_bootstrap_admin(pool: asyncpg.Pool, password: str) -> bool:
    """Create ``admin`` on first start; True when it was created now. An existing admin is left alone."""
    if await pool.fetchval("SELECT 1 FROM users WHERE username = 'admin'"):
        return False
    row = await create(pool, "admin", password, ["admin"])
    return row is not None
