"""Keeping this replica's :class:`~.cache.CapitalCache` in step with the database and the other replicas.

* A replica applies its own changes right after they commit.
* Other replicas' changes arrive by ``LISTEN capital_allocator_changed``: a
  strategy change carries the new row (applied without a query), a delete its
  version, and a portfolio change or allocation run asks for a full reload.
* Notifications that arrive while a full reload is reading are buffered and
  replayed on top of it; the per-row version guard keeps the newest state.
* If the LISTEN connection drops, a periodic poll compares a fingerprint of
  the tables (row count, sum of versions, portfolio version) with the cache's,
  reloads on a difference and re-opens the LISTEN connection (then reloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from sandbox.services.capital_allocator import repository
from sandbox.services.capital_allocator.cache import CapitalCache, StrategyState

log = logging.getLogger("sandbox.services.capital_allocator.sync")

Connect = Callable[[], Awaitable[asyncpg.Connection]]
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class CacheSync:
    """Owns the LISTEN connection, the poll loop and every reload of the cache."""

    def __init__(
        self, pool: asyncpg.Pool, connect: Connect, cache: CapitalCache, *, poll_s: float,
        on_reload: Callable[[str], None] | None = None,
    ) -> None:
        """``connect`` opens a dedicated connection (same DSN and TLS as the pool) for LISTEN."""
        self.pool = pool
        self.connect = connect
        self.cache = cache
        self.poll_s = poll_s
        self.on_reload = on_reload
        self._lock = asyncio.Lock()
        self._reloading = False
        self._buffer: list[dict[str, Any]] = []
        self._again = False
        self._listener: asyncpg.Connection | None = None
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is open."""
        return self._listener is not None and not self._listener.is_closed()

    async def start(self) -> None:
        """Load the cache, then listen and poll (a failing first LISTEN only degrades to polling)."""
        await self.reload("startup")
        await self._listen()
        self._poller = asyncio.create_task(self._poll_loop(), name="capital-cache-poll")

    async def stop(self) -> None:
        """Stop polling, cancel pending reloads and close the LISTEN connection."""
        self._stopping = True
        for task in [self._poller, *self._tasks]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, *DB_ERRORS):
                    await task
        self._poller = None
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        self._listener = None

    # ---- applying changes ----------------------------------------------------------

    async def reload(self, reason: str) -> None:
        """Rebuild the cache from the database (repeated while a full-reload request arrives meanwhile)."""
        async with self._lock:
            while True:
                self._reloading, self._buffer, self._again = True, [], False
                try:
                    portfolio, rows = await repository.load_all(self.pool)
                    self.cache.install(portfolio, rows)
                    buffered = self._buffer
                finally:
                    self._reloading, self._buffer = False, []
                for change in buffered:
                    self._apply(change)
                if not self._again:
                    break
                reason = "notify-during-reload"
        log.debug("capital cache reloaded", extra={"reason": reason, "strategies": len(rows)})
        if self.on_reload is not None:
            self.on_reload(reason)

    def local(self, state: StrategyState) -> None:
        """Apply a change this replica just committed."""
        self._ingest({"k": "s", "state": state})

    def local_delete(self, strategy: str, version: int) -> None:
        """Apply a delete this replica just committed."""
        self._ingest({"k": "d", "s": strategy, "v": version})

    def _ingest(self, change: dict[str, Any]) -> None:
        if self._reloading:
            if change.get("k") == "full":
                self._again = True
            else:
                self._buffer.append(change)
            return
        self._apply(change)

    def _apply(self, change: dict[str, Any]) -> None:
        kind = change.get("k")
        try:
            if kind == "s":
                state = change.get("state")
                if state is None:
                    row = change["row"]
                    held = self.cache.strategies.get(row["strategy"])
                    if held is not None and held.version >= int(row["version"]):
                        return  # typically our own change, already applied: skip the parsing
                    state = StrategyState.from_wire(row)
                self.cache.apply(state)
            elif kind == "d":
                self.cache.remove(str(change["s"]), int(change["v"]))
            elif kind == "full":
                self._spawn_reload("notify")
        except (KeyError, ValueError, TypeError, ArithmeticError) as exc:
            log.warning("bad change notification; reloading", extra={"error": str(exc)})
            self._spawn_reload("bad-notification")

    def _spawn_reload(self, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self._safe_reload(reason))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _safe_reload(self, reason: str) -> None:
        try:
            await self.reload(reason)
        except DB_ERRORS as exc:
            log.warning("capital cache reload failed", extra={"reason": reason, "error": str(exc)})

    # ---- LISTEN and poll -----------------------------------------------------------

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = json.loads(payload)
        except ValueError:
            change = {"k": "full"}
        if not isinstance(change, dict):
            change = {"k": "full"}
        self._ingest(change)

    def _lost(self, _conn: Any) -> None:
        if not self._stopping:
            log.warning("LISTEN connection lost; polling until it is back")

    async def _listen(self) -> bool:
        try:
            conn = await self.connect()
            conn.add_termination_listener(self._lost)
            await conn.add_listener(repository.CHANNEL, self._notified)
        except DB_ERRORS as exc:
            log.warning("cannot LISTEN for changes; relying on the poll", extra={"error": str(exc)})
            return False
        self._listener = conn
        return True

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            if not self.listening and await self._listen():
                await self._safe_reload("relisten")  # changes may have been missed while deaf
                continue
            try:
                current = await repository.fingerprint(self.pool)
            except DB_ERRORS as exc:
                log.warning("cache poll failed", extra={"error": str(exc)})
                continue
            if current != self.cache.fingerprint():
                await self._safe_reload("poll")
