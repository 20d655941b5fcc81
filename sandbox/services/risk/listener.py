"""LISTEN on a dataset database's change channel; reconnect (and reload everything) when it drops.

One dedicated connection per database. A notification names what changed (see
:mod:`sandbox.services.risk.audit`); on every (re)connection the whole dataset
is reloaded, because notifications sent while disconnected are lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from sandbox.services.risk.audit import CHANNEL

log = logging.getLogger("sandbox.services.risk.listener")


class ChangeListener:
    """Owns one asyncpg connection subscribed to :data:`CHANNEL` of one database."""

    def __init__(
        self,
        name: str,
        dsn: str,
        on_notify: Callable[[str], None],
        on_connect: Callable[[], None],
        *,
        retry_s: float = 1.0,
    ) -> None:
        """``on_notify(payload)`` per notification; ``on_connect()`` after each (re)connection."""
        self.name = name
        self.dsn = dsn
        self.on_notify = on_notify
        self.on_connect = on_connect
        self.retry_s = retry_s
        self._conn: asyncpg.Connection | None = None
        self._task: asyncio.Task[None] | None = None
        self._lost = asyncio.Event()
        self._stopping = False

    @property
    def connected(self) -> bool:
        """Whether notifications are being received."""
        return self._conn is not None and not self._conn.is_closed()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            self.on_notify(payload)
        except Exception:  # a bad payload must not kill the listener
            log.exception("change notification not handled", extra={"dataset": self.name})

    def _terminated(self, _conn: Any) -> None:
        self._lost.set()

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self.dsn, timeout=5)
        conn.add_termination_listener(self._terminated)
        await conn.add_listener(CHANNEL, self._notified)
        self._conn = conn
        self._lost.clear()
        self.on_connect()

    async def start(self) -> None:
        """Connect once (raising on failure, so start-up reports it), then supervise in the background."""
        await self._connect()
        self._task = asyncio.create_task(self._supervise(), name=f"risk-listener-{self.name}")

    async def _supervise(self) -> None:
        while not self._stopping:
            await self._lost.wait()
            if self._stopping:
                return
            log.warning("change listener lost its connection", extra={"dataset": self.name})
            self._conn = None
            while not self._stopping:
                try:
                    await self._connect()
                    log.info("change listener reconnected", extra={"dataset": self.name})
                    break
                except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                    log.warning("change listener reconnect failed", extra={"dataset": self.name, "error": type(exc).__name__})
                    await asyncio.sleep(self.retry_s)

    async def stop(self) -> None:
        """Stop supervising and close the connection."""
        self._stopping = True
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
