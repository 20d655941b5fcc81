"""Keeping the in-memory snapshot in step with the database, across replicas.

A replica reloads its :class:`~.cache.Snapshot` right after its own writes,
on ``NOTIFY universe_changed`` from another replica (a dedicated LISTEN
connection), and, as a fallback for a lost connection or notification, when a
periodic poll of ``universe_revision`` finds a newer revision.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from sandbox.services.universe import repository
from sandbox.services.universe.cache import Snapshot

log = logging.getLogger("sandbox.services.universe.catalog")

ReloadHook = Callable[[Snapshot, str], None]


class Catalog:
    """The current snapshot plus the machinery that refreshes it."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, poll_s: float, on_reload: ReloadHook | None = None) -> None:
        """``dsn`` opens the LISTEN connection; ``on_reload(snapshot, reason)`` runs after each reload."""
        self.pool = pool
        self.dsn = dsn
        self.poll_s = poll_s
        self.on_reload = on_reload
        self.snapshot = Snapshot([], -1)
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._listener: asyncpg.Connection | None = None
        self._poller: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Load the first snapshot, then start listening and polling."""
        await self.reload("startup")
        await self._listen()
        self._poller = asyncio.create_task(self._poll_loop(), name="universe-cache-poll")

    async def stop(self) -> None:
        """Stop the poll loop and close the LISTEN connection."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for task in list(self._tasks):
            task.cancel()
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        self._listener = None

    async def reload(self, reason: str, *, min_revision: int | None = None) -> Snapshot:
        """Rebuild the snapshot from the database unless it already holds ``min_revision``."""
        async with self._lock:
            if min_revision is not None and self.snapshot.revision >= min_revision:
                return self.snapshot
            records, revision = await repository.load_all(self.pool)
            self.snapshot = Snapshot(records, revision)
        log.info("instrument cache reloaded", extra={"reason": reason, "revision": revision, "count": len(records)})
        if self.on_reload is not None:
            self.on_reload(self.snapshot, reason)
        return self.snapshot

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is open."""
        return self._listener is not None and not self._listener.is_closed()

    async def _listen(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=5)
            await conn.add_listener(repository.CHANNEL, self._notified)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("cannot LISTEN for changes; relying on the revision poll", extra={"error": str(exc)})
            return
        self._listener = conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            revision = int(payload)
        except ValueError:
            return
        if revision > self.snapshot.revision:
            task = asyncio.get_running_loop().create_task(self._safe_reload("notify", revision))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _safe_reload(self, reason: str, revision: int | None) -> None:
        try:
            await self.reload(reason, min_revision=revision)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("instrument cache reload failed", extra={"reason": reason, "error": str(exc)})

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                revision = await repository.current_revision(self.pool)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("revision poll failed", extra={"error": str(exc)})
                continue
            if revision > self.snapshot.revision:
                await self._safe_reload("poll", revision)
            if not self.listening:
                await self._listen()
