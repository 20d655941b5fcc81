"""The live-session check against the session Redis, cached locally and invalidated by Redis itself.

Every authenticated request must know that its session (``auth:session:{sid}``)
still exists. Asking Redis each time costs a round trip and more CPU than the
rest of the check; caching the answer blindly would let a revoked token work
until the entry aged out. :class:`TrackedSessions` caches it the way Redis is
built for (server-assisted client-side caching, ``CLIENT TRACKING`` over
RESP3): the connection that reads a session key is told, on that same
connection, when the key is modified, deleted or expired, and the entry is
dropped. What a cached "live" answer guarantees:

* **revocation**: Redis writes the invalidation push while it executes the
  ``DEL`` and flushes it with that event-loop iteration's replies, before it
  reads any later command. auth-service answers a revocation (logout, refresh
  replay, user change) only after one more round trip to Redis, so once the
  revoker has its answer the push is on the wire to every service (on one
  machine, in its socket buffer). Each cache hit first drains the socket
  without blocking, so a request sent after the revocation answered is refused.
* **expiry**: the entry never outlives the key's own TTL (the check is ``PTTL``,
  not ``EXISTS``), and never ``MAX_AGE_S`` (a bound for the unforeseen: a silently
  dead connection, a lost push).
* **connection loss**: the cache is emptied (pushes may have been missed);
  the next check reconnects.
* **no tracking** (Redis before 6 has no ``HELLO 3``): nothing is cached; every
  check asks Redis, as before.

Commands issued in the same event-loop tick go out as one write (see
:class:`~sandbox.services.kit.auth.SessionChecker`); replies are matched in order.
The connection itself (socket, RESP parser, pipelining, failures) is the kit's
:class:`~sandbox.services.kit.resp.RespConnection`, shared with the OMS's raw
client-order-id claims.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sandbox.services.kit.resp import RespConnection, _Push, command
from sandbox.services.kit.resp import ResponseError as ResponseError  # re-exported: what set-up raises

__all__ = ["ResponseError", "TrackedSessions"]


class TrackedSessions(RespConnection):
    """``PTTL`` for many keys in one write over one plain-TCP RESP3 connection with client tracking on,
    and the cache of keys known live (see the module docstring for what it guarantees)."""

    label = "session Redis"
    #: Longest a "live" answer is reused without asking Redis again.
    MAX_AGE_S = 1.0
    #: Most sessions cached at once (beyond: stale entries are dropped, then all; a miss only costs a PTTL).
    MAX_ENTRIES = 100_000

    def __init__(self, host: str, port: int, *, db: int = 0, username: str | None = None,
                 password: str | None = None, connect_timeout: float = 2.0, timeout: float = 5.0) -> None:
        """Where the session Redis is and how to log in; timeouts in seconds (each reply within ``timeout``)."""
        super().__init__(host, port, db=db, username=username, password=password,
                         connect_timeout=connect_timeout, timeout=timeout)
        self._live: dict[str, float] = {}
        #: Whether Redis tracks our reads (RESP3, Redis 6+); without it nothing is cached.
        self.tracking = False

    # ---- the cache --------------------------------------------------------------------------

    def cached(self, key: str) -> bool:
        """Whether ``key`` is known live right now (pending invalidations are read first)."""
        until = self._live.get(key)
        if until is None:
            return False
        if self._sock is not None:
            self._read()  # a push already in the socket must win over the entry
        until = self._live.get(key)
        if until is None:
            return False
        if until <= time.monotonic():
            self._live.pop(key, None)
            return False
        return True

    @property
    def cache_size(self) -> int:
        """How many keys are cached as live."""
        return len(self._live)

    def _invalidate(self, keys: Any) -> None:
        if keys is None:  # FLUSHDB/FLUSHALL: everything may be gone
            self._live.clear()
            return
        for key in keys:
            self._live.pop(key.decode() if isinstance(key, bytes) else str(key), None)

    # ---- the connection ---------------------------------------------------------------------

    async def pttl(self, keys: list[str]) -> list[int]:
        """``PTTL key`` for each key, in order (-2: missing); live answers are cached as they arrive."""
        await self._ensure()
        data = b"".join(b"*2\r\n$4\r\nPTTL\r\n$%d\r\n%s\r\n" % (len(raw), raw) for raw in (k.encode() for k in keys))
        return await self._replies(self._send(data, keys))

    async def _setup_connection(self) -> None:
        self.tracking = False
        hello = ["HELLO", "3"]
        if self.password:
            hello += ["AUTH", self.username or "default", self.password]
        try:
            await self._setup([command(*hello)])
            tracking = True
        except ResponseError:  # Redis before 6: RESP2, no tracking, so nothing is cached
            tracking = False
            if self.password:
                await self._setup([command("AUTH", *([self.username] if self.username else []), self.password)])
        rest = [command("SELECT", str(self.db))] if self.db else []
        if tracking:
            rest.append(command("CLIENT", "TRACKING", "ON"))
        if rest:
            await self._setup(rest)
        self.tracking = tracking

    def _push(self, value: _Push) -> None:
        if value and value[0] == b"invalidate":
            self._invalidate(value[1] if len(value) > 1 else None)

    def _reply(self, fut: asyncio.Future[Any], key: Any, value: Any) -> None:
        if key is not None and self.tracking and isinstance(value, int) and value != -2:
            # Cached here, in stream order: a push read after this reply (a later DEL) drops it again.
            age = self.MAX_AGE_S if value < 0 else min(self.MAX_AGE_S, value / 1000)
            now = time.monotonic()
            if len(self._live) >= self.MAX_ENTRIES:  # entries of sessions no longer used: drop the stale ones
                self._live = {k: t for k, t in self._live.items() if t > now}
                if len(self._live) >= self.MAX_ENTRIES:
                    self._live.clear()
            self._live[key] = now + age
        if not fut.done():
            fut.set_result(value)

    def _on_fail(self) -> None:
        """Pushes may have been lost with the connection: nothing cached can be trusted."""
        self._live.clear()
