"""LISTEN on the change channel and evict the metadata cache; reconnect when the connection drops.

The cache is enabled only while this listener holds a live connection: after a
drop it is cleared and disabled (reads go to the database) until the listener
is back, so missed notifications can never leave stale metadata behind.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from sandbox.services.secrets.cache import MetadataCache
from sandbox.services.secrets.store import ALL_ACCOUNTS, CHANNEL

log = logging.getLogger("sandbox.services.secrets.listener")


class ChangeListener:
    """Owns one dedicated asyncpg connection subscribed to :data:`CHANNEL`."""

    def __init__(self, dsn: str, cache: MetadataCache, *, retry_s: float = 1.0) -> None:
        """``dsn`` is the service database; ``cache`` is evicted on every notification."""
        self.dsn = dsn
        self.cache = cache
        self.retry_s = retry_s
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._stopping = False

    @property
    def connected(self) -> bool:
        """Whether notifications are being received."""
        return self._conn is not None and not self._conn.is_closed()

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == ALL_ACCOUNTS:
            self.cache.clear()
        else:
            self.cache.evict(payload)

    def _on_terminate(self, _conn: Any) -> None:
        self.cache.enabled = False
        self.cache.clear()
        self._lost.set()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        conn.add_termination_listener(self._on_terminate)
        await conn.add_listener(CHANNEL, self._on_notify)
        self._conn = conn
        self._lost.clear()
        self.cache.clear()  # anything cached before we listened may be stale
        self.cache.enabled = True

    async def start(self) -> None:
        """Connect once (raising on failure, so start-up reports it), then supervise in the background."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name="secrets-change-listener")

    async def _supervise(self) -> None:
        while not self._stopping:
            await self._lost.wait()
            if self._stopping:
                return
            log.warning("change listener lost its connection; metadata cache disabled until it reconnects")
            self._conn = None
            while not self._stopping:
                try:
                    await self._connect()
                    log.info("change listener reconnected; metadata cache enabled")
                    break
                except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                    log.warning("change listener reconnect failed", extra={"error": type(exc).__name__})
                    await asyncio.sleep(self.retry_s)

    async def stop(self) -> None:
        """Stop supervising and close the connection."""
        self._stopping = True
        self.cache.enabled = False
        self._lost.set()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._conn is not None and not self._conn.is_closed():
            try:
                await self._conn.close(timeout=2)
            except Exception:  # closing on shutdown: nothing useful to do with a failure
                self._conn.terminate()
        self._conn = None
