"""Argon2id password hashing off the event loop, with bounded concurrency.

Parameters follow OWASP's argon2id minimum (19 MiB, t=2, p=1): strong, yet a
login stays affordable under a 100m CPU quota and a few concurrent hashes fit
in the memory request.
"""

from __future__ import annotations

import asyncio

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
_slots = asyncio.Semaphore(2)
_DUMMY: str | None = None


async def hash_password(password: str) -> str:
    """An argon2id hash of ``password``."""
    async with _slots:
        return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored: str | None, password: str) -> tuple[bool, bool]:
    """``(matches, needs_rehash)``; a missing user is checked against a dummy hash (same timing)."""
    global _DUMMY
    if stored is None:
        if _DUMMY is None:
            _DUMMY = await hash_password("dummy password for absent users")
        stored = _DUMMY
        password = password + "\x00absent"  # never matches
    async with _slots:
        try:
            await asyncio.to_thread(_hasher.verify, stored, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False, False
    return True, _hasher.check_needs_rehash(stored)
