"""Coalescing reloads: many change notifications, one load at a time, the last one always covered.

``request()`` asks for a load that starts after the call; requests arriving
while a load runs are served by one more load. ``refresh()`` also waits for it
(read-your-writes on the replica that made the change).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("sandbox.services.risk.reload")


class Reloader:
    """Runs ``load()`` then ``apply(result)``, coalescing concurrent requests."""

    def __init__(
        self,
        name: str,
        load: Callable[[], Awaitable[Any]],
        apply: Callable[[Any], None],
        *,
        retry_s: float = 1.0,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        """``name`` appears in logs; ``on_error(name)`` is called on each failed load."""
        self.name = name
        self._load = load
        self._apply = apply
        self._retry_s = retry_s
        self._on_error = on_error
        self._requested = 0
        self._done = 0
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Condition()
        self.loads = 0
        self.last_error: str | None = None

    async def load_now(self) -> None:
        """Load and apply once, raising on failure (start-up uses this)."""
        self._requested += 1
        target = self._requested
        self._apply(await self._load())
        self.loads += 1
        self._done = max(self._done, target)

    def request(self) -> int:
        """Ask for a load that starts after now; returns the generation that will cover it."""
        self._requested += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"risk-reload-{self.name}")
        return self._requested

    async def refresh(self, timeout: float = 5.0) -> bool:
        """Request a load and wait until it is applied; False on timeout (it keeps retrying)."""
        target = self.request()
        try:
            async with asyncio.timeout(timeout):
                async with self._changed:
                    await self._changed.wait_for(lambda: self._done >= target)
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        while self._done < self._requested:
            target = self._requested
            try:
                value = await self._load()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away: keep the old copy and retry
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("dataset reload failed", extra={"dataset": self.name, "error": self.last_error})
                if self._on_error is not None:
                    self._on_error(self.name)
                await asyncio.sleep(self._retry_s)
                continue
            self._apply(value)
            self.loads += 1
            self.last_error = None
            self._done = target
            async with self._changed:
                self._changed.notify_all()

    async def stop(self) -> None:
        """Cancel a running load."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
