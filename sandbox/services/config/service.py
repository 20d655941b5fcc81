"""The config-service core: versioned writes, cached reads, change propagation.

Read path (no database round trip when cached): the in-memory
:class:`~.index.VersionIndex` says which version is current; its body comes
from the memory LRU, else the disk cache, else the database (then both caches
are filled). Write path: one serialised transaction (:mod:`.store`), then the
index and caches are updated (superseded versions removed), then a NATS
notification goes out. Other replicas converge through the notification (an
immediate catch-up) or the periodic catch-up with the database.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg

from sandbox.services.config import render, store
from sandbox.services.config.cache import DiskCache, MemoryCache
from sandbox.services.config.index import Change, KeyState, VersionIndex
from sandbox.services.config.models import ChangeEvent
from sandbox.services.config.notify import Notifier
from sandbox.services.config.preconditions import key_etag
from sandbox.services.config.settings import ConfigSettings
from sandbox.services.config.telemetry import ConfigMetrics
from sandbox.services.kit.errors import ServiceError

log = logging.getLogger("sandbox.services.config")


@dataclass(frozen=True, slots=True)
class Page:
    """A namespace page: the revision it reflects and its body."""

    revision: int
    body: bytes


def _not_found(namespace: str, key: str, state: KeyState | None) -> ServiceError:
    if state is not None and state.deleted:
        return ServiceError(
            404, "key_deleted", f"{namespace}/{key} was deleted at version {state.version}",
            detail={"version": state.version, "deleted": True},
        )
    return ServiceError(404, "key_not_found", f"{namespace}/{key} does not exist", detail={"version": 0})


class ConfigService:
    """Owns the index, the caches and the notifier of one process."""

    def __init__(
        self, pool: asyncpg.Pool, settings: ConfigSettings, metrics: ConfigMetrics, notifier: Notifier | None
    ) -> None:
        """Nothing is loaded until :meth:`start`."""
        self.pool = pool
        self.settings = settings
        self.metrics = metrics
        self.notifier = notifier
        self.index = VersionIndex()
        self.memory = MemoryCache(settings.memory_cache_bytes)
        self.disk = DiskCache(settings.cache_dir)
        self._sync_lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._namespaces: tuple[int, bytes] | None = None

    # -- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        """Load the index, prune stale cache files, start listening and the periodic catch-up."""
        await self.sync()
        removed = self.disk.prune(self.index.current_versions())
        log.info("config index loaded", extra={
            "last_seq": self.index.last_seq, "stale_cache_files_removed": removed,
            "disk_cache": "ok" if self.disk.usable else f"disabled: {self.disk.problem}",
        })
        if self.notifier is not None:
            await self.notifier.ensure_stream()
            await self.notifier.listen(self.on_event)
            log.info("change notifications ready", extra={"mode": self.notifier.mode})
        self._task = asyncio.create_task(self._catch_up_loop(), name="config-catch-up")

    async def stop(self) -> None:
        """Stop listening and the catch-up task."""
        if self.notifier is not None:
            await self.notifier.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _catch_up_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.sync_interval_s)
            self._wake.clear()
            try:
                await self.sync()
            except Exception as exc:  # the loop must outlive a database outage
                self.metrics.sync("failed")
                log.warning("catch-up with the database failed", extra={"error": str(exc)[:200]})

    def on_event(self, event: ChangeEvent) -> None:
        """A notification: catch up now if it names a change this index has not seen."""
        state = self.index.get(event.namespace, event.key)
        if state is None or state.version < event.version:
            self._wake.set()

    async def sync(self) -> int:
        """Apply every change committed since the last catch-up; returns how many keys changed."""
        async with self._sync_lock:
            changes = await store.changes_since(self.pool, self.index.last_seq)
            applied = 0
            for namespace, key, state in changes:
                change = self.index.apply(namespace, key, state)
                if change is not None:
                    self._evict(change)
                    applied += 1
                self.index.last_seq = max(self.index.last_seq, state.seq)
        self.metrics.sync("ok")
        return applied

    def _evict(self, change: Change) -> None:
        """Drop what a change superseded from both caches (invalidation on write)."""
        if change.previous is not None:
            self.memory.discard((change.namespace, change.key, change.previous.version))
        keep = None if change.current.deleted else change.current.version
        self.disk.invalidate(change.namespace, change.key, keep)

    # -- reads -------------------------------------------------------------

    def current(self, namespace: str, key: str) -> KeyState:
        """The current live state of a key, else 404 (``key_not_found`` / ``key_deleted``)."""
        state = self.index.get(namespace, key)
        if state is None or state.deleted:
            raise _not_found(namespace, key, state)
        return state

    def _cached(self, namespace: str, key: str, version: int) -> bytes | None:
        ck = (namespace, key, version)
        body = self.memory.get(ck)
        if body is not None:
            self.metrics.reads["memory"].inc()
            return body
        body = self.disk.read(namespace, key, version)
        if body is not None:
            self.memory.put(ck, body)
            self.metrics.reads["disk"].inc()
        return body

    def _remember(self, version: render.Version) -> bytes:
        body = render.entry_body(version)
        self.memory.put((version.namespace, version.key, version.version), body)
        self.disk.write(version.namespace, version.key, version.version, body)
        return body

    async def entry_body(self, namespace: str, key: str, version: int) -> bytes:
        """The response body of a key at ``version`` (memory, disk, then database)."""
        body = self._cached(namespace, key, version)
        if body is not None:
            return body
        found = await store.fetch_versions(self.pool, namespace, [(key, version)])
        if not found or found[0].value_text is None:
            raise _not_found(namespace, key, None)
        self.metrics.reads["database"].inc()
        return self._remember(found[0])

    async def namespace_page(self, namespace: str, after: str | None, limit: int) -> Page:
        """A page of live keys after ``after`` (exclusive), bodies from the caches where possible."""
        revision = self.index.revision(namespace)
        keys = self.index.live_keys(namespace)
        start = bisect.bisect_right(keys, after) if after is not None else 0
        chunk = keys[start:start + limit]
        next_after = chunk[-1] if chunk and start + limit < len(keys) else None
        wanted = [(k, s.version) for k in chunk if (s := self.index.get(namespace, k)) is not None and not s.deleted]
        bodies: dict[str, bytes] = {}
        missing: list[tuple[str, int]] = []
        for k, version in wanted:
            body = self._cached(namespace, k, version)
            if body is None:
                missing.append((k, version))
            else:
                bodies[k] = body
        if missing:
            for found in await store.fetch_versions(self.pool, namespace, missing):
                if found.value_text is not None:
                    self.metrics.reads["database"].inc()
                    bodies[found.key] = self._remember(found)
        ordered = [bodies[k] for k, _ in wanted if k in bodies]
        return Page(revision, render.namespace_page_body(namespace, revision, ordered, next_after))

    def namespaces_body(self) -> bytes:
        """The namespace list (rebuilt only when the index changed)."""
        generation = self.index.generation
        if self._namespaces is None or self._namespaces[0] != generation:
            self._namespaces = (generation, render.namespaces_body(self.index.namespaces()))
        return self._namespaces[1]

    async def history_body(self, namespace: str, key: str, before: int | None, limit: int) -> bytes:
        """Versions of a key newest first (404 when the key never existed)."""
        versions = await store.history(self.pool, namespace, key, before=before, limit=limit)
        if not versions and (before is None or self.index.get(namespace, key) is None):
            raise _not_found(namespace, key, None)
        next_before = versions[-1].version if len(versions) == limit and versions[-1].version > 1 else None
        return render.history_body(namespace, key, versions, next_before)

    # -- writes ------------------------------------------------------------

    async def put(self, namespace: str, key: str, value_text: str, expected: int, who: str) -> store.Written:
        """Write a value if ``expected`` is the current version (0 creates); 409 otherwise."""
        result = await store.write(self.pool, namespace, key, value_text=value_text, expected=expected, changed_by=who)
        if isinstance(result, store.Conflict):
            self.metrics.write("put", "conflict")
            raise self._conflict(namespace, key, expected, result)
        self.metrics.write("put", "committed")
        await self._committed(result)
        return result

    async def delete(self, namespace: str, key: str, expected: int, who: str) -> store.Written:
        """Delete a key if ``expected`` is its current version; 404 when absent, 409 when stale."""
        result = await store.write(self.pool, namespace, key, value_text=None, expected=expected, changed_by=who)
        if isinstance(result, store.Conflict):
            self.metrics.write("delete", "conflict")
            if not result.exists:
                raise _not_found(namespace, key, KeyState(result.current_version, True, 0) if result.current_version else None)
            raise self._conflict(namespace, key, expected, result)
        self.metrics.write("delete", "committed")
        await self._committed(result)
        return result

    @staticmethod
    def _conflict(namespace: str, key: str, expected: int, conflict: store.Conflict) -> ServiceError:
        detail: dict[str, Any] = {
            "current_version": conflict.current_version, "expected_version": expected, "exists": conflict.exists,
        }
        if conflict.exists:
            message = f"{namespace}/{key} is at version {conflict.current_version}, not {expected}"
            headers = {"ETag": key_etag(conflict.current_version)}
        else:
            message = f"{namespace}/{key} does not exist; create it with expected version 0"
            headers = None
        return ServiceError(409, "version_conflict", message, detail=detail, headers=headers)

    async def _committed(self, written: store.Written) -> None:
        v = written.version
        change = self.index.apply(v.namespace, v.key, KeyState(v.version, v.op == "delete", written.seq))
        if change is not None:
            self._evict(change)
        if v.op != "delete":
            self._remember(v)
        if self.notifier is not None:
            await self.notifier.publish(v.namespace, render.change_event(v))
