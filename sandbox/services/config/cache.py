"""Response caches for key reads: a bounded in-memory LRU over a directory on disk.

Both are keyed by ``(namespace, key, version)``. A cached body is immutable
(a version never changes once written), so correctness only depends on knowing
the current version (:mod:`sandbox.services.config.index`); invalidation on a
write removes the superseded versions to free space.

On disk the layout is ``<root>/<namespace>/<key>/<version>.json`` and holds the
exact response body. Files are written atomically (temporary file, then
rename), so a crash or a second replica sharing the directory never sees a
half-written body; the cache survives a restart of the process. The directory
is a cache, not a store: any I/O error disables nothing and loses nothing, the
body is then read from the database.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

log = logging.getLogger("sandbox.services.config")

CacheKey = tuple[str, str, int]


class MemoryCache:
    """LRU of response bodies bounded by their total size in bytes."""

    def __init__(self, max_bytes: int) -> None:
        """A cache holding at most ``max_bytes`` of bodies (0 disables it)."""
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[CacheKey, bytes] = OrderedDict()

    def get(self, key: CacheKey) -> bytes | None:
        """The cached body, marking it recently used; None on a miss."""
        body = self._items.get(key)
        if body is not None:
            self._items.move_to_end(key)
        return body

    def put(self, key: CacheKey, body: bytes) -> None:
        """Cache ``body`` (a body larger than the whole cache is not kept)."""
        if len(body) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old)
        self._items[key] = body
        self.size += len(body)
        while self.size > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.size -= len(evicted)

    def discard(self, key: CacheKey) -> None:
        """Forget one entry, if cached."""
        old = self._items.pop(key, None)
        if old is not None:
            self.size -= len(old)

    def __len__(self) -> int:
        """Number of cached bodies."""
        return len(self._items)


class DiskCache:
    """Response bodies as files under ``root`` (names are pre-validated namespace and key patterns)."""

    SUFFIX = ".json"

    def __init__(self, root: Path) -> None:
        """Use ``root`` (created when missing; a failure leaves the cache unusable but harmless)."""
        self.root = root
        self.usable = True
        self.problem: str | None = None
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / ".probe"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            self._disable(f"cache directory {root} is not writable: {exc.strerror or exc}")

    def _disable(self, reason: str) -> None:
        if self.usable:
            log.warning("disk cache disabled", extra={"reason": reason})
        self.usable = False
        self.problem = reason

    def path(self, namespace: str, key: str, version: int) -> Path:
        """Where the body of ``namespace/key`` at ``version`` lives."""
        return self.root / namespace / key / f"{version}{self.SUFFIX}"

    def read(self, namespace: str, key: str, version: int) -> bytes | None:
        """The cached body, or None (missing, unreadable or the cache unusable)."""
        if not self.usable:
            return None
        try:
            return self.path(namespace, key, version).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("disk cache read failed", extra={"error": str(exc)})
            return None

    def write(self, namespace: str, key: str, version: int, body: bytes) -> bool:
        """Store a body atomically; False when it could not be written."""
        if not self.usable:
            return False
        target = self.path(namespace, key, version)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=self.SUFFIX)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(body)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if exc.errno in (30, 13):  # EROFS, EACCES: the volume will not become writable
                self._disable(f"cannot write to {self.root}: {exc.strerror}")
            else:
                log.warning("disk cache write failed", extra={"error": str(exc)})
            return False
        return True

    def invalidate(self, namespace: str, key: str, keep: int | None = None) -> int:
        """Remove every cached version of a key except ``keep``; returns how many files went."""
        if not self.usable:
            return 0
        directory = self.root / namespace / key
        removed = 0
        try:
            entries = list(directory.iterdir())
        except OSError:
            return 0
        for entry in entries:
            if keep is not None and entry.name == f"{keep}{self.SUFFIX}":
                continue
            try:
                entry.unlink()
                removed += 1
            except OSError:
                pass
        return removed

    def prune(self, current: dict[tuple[str, str], int]) -> int:
        """Remove every file that is not the current version of a live key (run at start-up)."""
        if not self.usable:
            return 0
        removed = 0
        try:
            namespaces = [d for d in self.root.iterdir() if d.is_dir()]
        except OSError:
            return 0
        for ns_dir in namespaces:
            for key_dir in (d for d in ns_dir.iterdir() if d.is_dir()):
                keep = current.get((ns_dir.name, key_dir.name))
                removed += self.invalidate(ns_dir.name, key_dir.name, keep)
                _rmdir_quietly(key_dir)
            _rmdir_quietly(ns_dir)
        return removed


def _rmdir_quietly(directory: Path) -> None:
    try:
        directory.rmdir()  # only succeeds when empty
    except OSError:
        pass
