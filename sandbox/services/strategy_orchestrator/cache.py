"""This replica's in-memory copy of the strategy registry, kept in step with PostgreSQL and the other replicas.

Reads (``GET /v1/strategies[/{id}]``) are served from here as pre-rendered
JSON: no database round trip. Consistency:

* a replica applies its own writes right after they commit;
* every write ``pg_notify``-s the strategy id; the ``LISTEN`` connection marks
  it dirty and one refresher task re-reads the dirty rows in one query;
* a poll every ``STRATEGY_CACHE_POLL_S`` compares ``id -> version`` with the
  database (re-reading what differs) and re-opens a dropped ``LISTEN``
  connection, so a lost notification costs at most one poll interval.

Versions come from one sequence: an older row never replaces a newer one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from sandbox.services.strategy_orchestrator import repository
from sandbox.services.strategy_orchestrator.machine import allowed_actions
from sandbox.services.strategy_orchestrator.models import (
    AllowedActionPublic,
    CapitalTargetPublic,
    StrategyPublic,
    WorkflowSummary,
)

log = logging.getLogger("sandbox.services.strategy_orchestrator.cache")

DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
Connect = Callable[[], Awaitable[asyncpg.Connection]]


def public_from_row(row: asyncpg.Record) -> StrategyPublic:
    """A ``repository.STRATEGY_SELECT`` row as served."""
    workflow = None
    if row["wf_id"] is not None:
        workflow = WorkflowSummary(
            id=str(row["wf_id"]), kind=row["wf_kind"], status=row["wf_status"], outcome=row["wf_outcome"],
            started_at=row["wf_started_at"], finished_at=row["wf_finished_at"],
        )
    return StrategyPublic(
        id=row["id"], name=row["name"], kind=row["kind"], params=json.loads(row["params"]),
        accounts=list(row["accounts"]), symbols=list(row["symbols"]),
        capital=CapitalTargetPublic.model_validate(json.loads(row["capital"])),
        state=row["state"], state_reason=row["state_reason"], state_changed_at=row["state_changed_at"],
        allowed_actions=[AllowedActionPublic(action=a.action, to=a.to) for a in allowed_actions(row["state"])],
        workflow=workflow, version=row["version"], created_by=row["created_by"], created_at=row["created_at"],
        updated_by=row["updated_by"], updated_at=row["updated_at"],
    )


@dataclass(frozen=True)
class CachedStrategy:
    """One strategy as served: its version, what lists filter on, and its JSON body."""

    id: str
    version: int
    state: str
    kind: str
    body: bytes

    @property
    def etag(self) -> str:
        """The strong ETag of this version."""
        return f'"{self.version}"'


def cached_from_public(public: StrategyPublic) -> CachedStrategy:
    """Render a strategy once for every later read."""
    return CachedStrategy(public.id, public.version, public.state, public.kind, public.model_dump_json().encode())


class StrategyCache:
    """``id -> CachedStrategy`` plus sorted ids for paging; writes only through :meth:`put`."""

    def __init__(self, on_states: Callable[[dict[str, int]], None] | None = None) -> None:
        """An empty, not yet loaded cache; ``on_states`` hears the per-state counts after each change of state."""
        self.items: dict[str, CachedStrategy] = {}
        self._sorted: list[str] | None = []
        self._counts: dict[str, int] = {}
        self.on_states = on_states
        self.loaded = False

    def put(self, item: CachedStrategy) -> bool:
        """Install ``item`` unless a newer version is already cached; return whether it was installed."""
        old = self.items.get(item.id)
        if old is not None and old.version >= item.version:
            return False
        if old is None:
            self._sorted = None
        self.items[item.id] = item
        if old is None or old.state != item.state:
            if old is not None:
                self._counts[old.state] -= 1
            self._counts[item.state] = self._counts.get(item.state, 0) + 1
            if self.on_states is not None:
                self.on_states(self._counts)
        return True

    def get(self, strategy_id: str) -> CachedStrategy | None:
        """The cached strategy, or ``None``."""
        return self.items.get(strategy_id)

    def ids(self) -> list[str]:
        """Every id in order (kept sorted between inserts)."""
        if self._sorted is None:
            self._sorted = sorted(self.items)
        return self._sorted

    def counts(self) -> dict[str, int]:
        """How many strategies are in each state."""
        return {state: n for state, n in self._counts.items() if n}


class CacheSync:
    """Owns the LISTEN connection, the refresher and the poll loop of one :class:`StrategyCache`."""

    def __init__(self, pool: asyncpg.Pool, connect: Connect, cache: StrategyCache, *, poll_s: float) -> None:
        """``connect`` opens the dedicated LISTEN connection."""
        self.pool = pool
        self.connect = connect
        self.cache = cache
        self.poll_s = poll_s
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._listener: asyncpg.Connection | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is open."""
        return self._listener is not None and not self._listener.is_closed()

    async def start(self) -> None:
        """Load everything, then listen (a failing LISTEN degrades to polling) and start the background tasks."""
        for row in await repository.fetch_strategies(self.pool):
            self.cache.put(cached_from_public(public_from_row(row)))
        self.cache.loaded = True
        await self._listen()
        self._tasks = [
            asyncio.create_task(self._refresher(), name="strategy-cache-refresh"),
            asyncio.create_task(self._poller(), name="strategy-cache-poll"),
        ]

    async def stop(self) -> None:
        """Cancel the background tasks and close the LISTEN connection."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, *DB_ERRORS):
                await task
        self._tasks = []
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        self._listener = None

    def local(self, row: asyncpg.Record) -> StrategyPublic:
        """Apply a row this replica just committed; return it as served."""
        public = public_from_row(row)
        self.cache.put(cached_from_public(public))
        return public

    def mark_dirty(self, strategy_id: str) -> None:
        """Re-read ``strategy_id`` soon (coalesced with other notifications)."""
        self._dirty.add(strategy_id)
        self._wake.set()

    async def refresh(self, ids: list[str]) -> None:
        """Re-read ``ids`` from the database and install the newer versions."""
        for row in await repository.fetch_strategies(self.pool, ids):
            self.cache.put(cached_from_public(public_from_row(row)))

    async def _listen(self) -> None:
        try:
            conn = await self.connect()
            await conn.add_listener(repository.CHANNEL, self._on_notify)
        except DB_ERRORS as exc:
            log.warning("LISTEN unavailable; polling only until it reconnects", extra={"error": str(exc)})
            return
        self._listener = conn

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.mark_dirty(payload)

    async def _refresher(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            ids, self._dirty = sorted(self._dirty), set()
            try:
                await self.refresh(ids)
            except DB_ERRORS as exc:
                log.warning("cache refresh failed; retrying", extra={"error": str(exc)})
                self._dirty.update(ids)
                await asyncio.sleep(0.5)
                self._wake.set()

    async def sync_once(self) -> int:
        """Compare versions with the database and re-read what differs; return how many were stale."""
        versions = await repository.fetch_versions(self.pool)
        stale = [sid for sid, v in versions.items() if (c := self.cache.get(sid)) is None or c.version < v]
        if stale:
            await self.refresh(stale)
        return len(stale)

    async def _poller(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                if not self.listening:
                    await self._listen()
                stale = await self.sync_once()
                if stale:
                    log.info("cache caught up by polling", extra={"stale": stale})
            except DB_ERRORS as exc:
                log.warning("cache poll failed", extra={"error": str(exc)})
