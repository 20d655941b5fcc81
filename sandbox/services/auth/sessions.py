"""Sessions and lock-out counters in Redis.

* ``auth:session:{sid}`` (hash: sub, kind, refresh_hash, created) lives while the
  session does; every kit service checks its existence on each request, so
  deleting it revokes the session's access tokens everywhere.
* ``auth:user-sessions:{username}`` (set of sids) lets disabling a user or
  changing their roles or password revoke all their sessions.
* ``auth:failures:{who}`` / ``auth:locked:{who}``: failed-login counter over a
  window, and the lock set when it reaches the threshold.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from sandbox.services.kit.auth import session_key

# Compare-and-rotate the refresh hash atomically. A mismatch means an old refresh
# token was replayed (possible theft): the session is revoked.
_ROTATE = """
local h = redis.call('HGET', KEYS[1], 'refresh_hash')
if not h then return 0 end
if h ~= ARGV[1] then redis.call('DEL', KEYS[1]); return -1 end
redis.call('HSET', KEYS[1], 'refresh_hash', ARGV[2])
return 1
"""

# Count a failure; lock when the threshold is reached. Returns the lock TTL (0 = not locked).
_FAIL = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
if n >= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
  redis.call('DEL', KEYS[1])
  return tonumber(ARGV[3])
end
return 0
"""


def hash_secret(secret: str) -> str:
    """SHA-256 of a high-entropy secret (refresh tokens); enough since they are random."""
    return hashlib.sha256(secret.encode()).hexdigest()


def split_refresh_token(token: str) -> tuple[str, str] | None:
    """``(sid, secret)`` of a refresh token ``<sid>.<secret>``, or None when malformed."""
    sid, sep, secret = token.partition(".")
    if not sep or not sid or not secret or len(sid) > 64 or not sid.isalnum():
        return None
    return sid, secret


@dataclass(frozen=True)
class NewSession:
    """A created session: its id and (for users) the refresh token to hand out."""

    sid: str
    refresh_token: str | None


class SessionStore:
    """Sessions in the session Redis."""

    def __init__(self, sessions: aioredis.Redis) -> None:
        """``sessions`` is the Redis every service checks for revocation."""
        self.r = sessions
        self._rotate = sessions.register_script(_ROTATE)

    async def create(self, subject: str, kind: str, ttl_s: int, *, with_refresh: bool) -> NewSession:
        """Create a session living ``ttl_s`` seconds; users get a refresh token."""
        sid = secrets.token_hex(16)
        refresh = f"{sid}.{secrets.token_urlsafe(32)}" if with_refresh else None
        mapping = {"sub": subject, "kind": kind, "created": str(int(time.time()))}
        if refresh:
            mapping["refresh_hash"] = hash_secret(refresh.partition(".")[2])
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.hset(session_key(sid), mapping=mapping)
            pipe.expire(session_key(sid), ttl_s)
            if kind == "user":
                index = f"auth:user-sessions:{subject}"
                pipe.sadd(index, sid)
                pipe.expire(index, ttl_s)
            await pipe.execute()
        return NewSession(sid, refresh)

    async def get(self, sid: str) -> dict[str, str]:
        """The session's fields (empty when revoked or expired)."""
        return await self.r.hgetall(session_key(sid))

    async def rotate_refresh(self, refresh_token: str) -> tuple[str, dict[str, str], str] | None:
        """Swap a valid refresh token for a new one: ``(sid, session, new_token)``; None when invalid.

        Replaying an already-rotated token revokes the session.
        """
        parts = split_refresh_token(refresh_token)
        if parts is None:
            return None
        sid, secret = parts
        new_token = f"{sid}.{secrets.token_urlsafe(32)}"
        outcome = await self._rotate(keys=[session_key(sid)], args=[hash_secret(secret), hash_secret(new_token.partition(".")[2])])
        if int(outcome) == -1:  # a replayed refresh token revoked the session
            await self.flushed()
        if int(outcome) != 1:
            return None
        session = await self.get(sid)
        if not session:
            return None
        return sid, session, new_token

    async def revoke(self, sid: str, subject: str | None = None) -> None:
        """Delete one session (its tokens stop working everywhere)."""
        async with self.r.pipeline(transaction=True) as pipe:
            pipe.delete(session_key(sid))
            if subject:
                pipe.srem(f"auth:user-sessions:{subject}", sid)
            await pipe.execute()
        await self.flushed()

    async def flushed(self) -> None:
        """Return once Redis has sent the invalidations of the commands before (one more round trip).

        Services cache live sessions and Redis tells them when a key is deleted
        (client tracking, :mod:`sandbox.services.kit.sessions`). Redis writes those
        pushes with the replies of the same event-loop iteration and only then reads
        new commands, so this reply proves they are on the wire: a revocation is
        answered only after every service can see it.
        """
        await self.r.ping()

    async def revoke_user(self, username: str) -> int:
        """Delete every session of a user; return how many were live."""
        index = f"auth:user-sessions:{username}"
        sids = await self.r.smembers(index)
        if not sids:
            return 0
        async with self.r.pipeline(transaction=True) as pipe:
            for sid in sids:
                pipe.delete(session_key(sid))
            pipe.delete(index)
            results = await pipe.execute()
        await self.flushed()
        return sum(int(x) for x in results[:-1])


class Lockout:
    """Failed-attempt counters and locks (in auth's own Redis)."""

    def __init__(self, r: aioredis.Redis, *, threshold: int, window_s: int, duration_s: int) -> None:
        """``threshold`` failures within ``window_s`` lock for ``duration_s``."""
        self.r = r
        self.threshold, self.window_s, self.duration_s = threshold, window_s, duration_s
        self._fail = r.register_script(_FAIL)

    async def locked_for(self, who: str) -> int:
        """Seconds the lock on ``who`` still holds (0 = not locked)."""
        ttl = await self.r.ttl(f"auth:locked:{who}")
        return max(int(ttl), 0) if ttl != -1 else self.duration_s

    async def failure(self, who: str) -> int:
        """Count a failure; return the lock duration when this one locked ``who`` (else 0)."""
        result = await self._fail(
            keys=[f"auth:failures:{who}", f"auth:locked:{who}"],
            args=[self.window_s, self.threshold, self.duration_s],
        )
        return int(result)

    async def success(self, who: str) -> None:
        """Clear the failure counter after a successful login."""
        await self.r.delete(f"auth:failures:{who}")
