"""In-memory cache of per-account key metadata, kept coherent across replicas.

Reads of ``/v1/accounts/{account}/...`` metadata are served from here (as
pre-encoded JSON) so the hot path costs no database round trip. Every write
commits a ``pg_notify`` and every replica evicts the account when the
notification arrives (:mod:`sandbox.services.secrets.listener`). The cache is
only *enabled* while that listener is connected; otherwise reads go to the
database, so a lost notification channel can never serve stale metadata.

A read that started before an eviction must not re-insert what it read: each
account has a generation number bumped by every eviction, and :meth:`put`
stores only if the generation it saw at :meth:`begin` is still current.
Secret material is never cached.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any


class MetadataCache:
    """LRU of account -> cached value, with generations, a TTL safety net and an on/off switch."""

    def __init__(self, max_entries: int = 10_000, ttl_s: float = 300.0, clock=time.monotonic) -> None:
        """``ttl_s`` bounds staleness should a notification ever be missed."""
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._generations: dict[str, int] = {}
        self._epoch = 0  # bumped by clear(): invalidates every in-flight read
        self.enabled = False

    def begin(self, account: str) -> tuple[int, int]:
        """A token to pass to :meth:`put` after reading ``account`` from the database."""
        return self._epoch, self._generations.get(account, 0)

    def get(self, account: str) -> Any | None:
        """The cached value, or None when absent, expired or the cache is disabled."""
        if not self.enabled:
            return None
        entry = self._entries.get(account)
        if entry is None:
            return None
        stored_at, value = entry
        if self._clock() - stored_at > self.ttl_s:
            del self._entries[account]
            return None
        self._entries.move_to_end(account)
        return value

    def put(self, account: str, token: tuple[int, int], value: Any) -> bool:
        """Store ``value`` unless the account was evicted since ``token`` was taken; returns whether stored."""
        if not self.enabled or token != (self._epoch, self._generations.get(account, 0)):
            return False
        self._entries[account] = (self._clock(), value)
        self._entries.move_to_end(account)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
        return True

    def evict(self, account: str) -> None:
        """Forget ``account`` (a write happened somewhere)."""
        self._entries.pop(account, None)
        self._generations[account] = self._generations.get(account, 0) + 1
        if len(self._generations) > 4 * self.max_entries:
            self.clear()  # keeps the generation map bounded; clear() invalidates in-flight reads via the epoch

    def clear(self) -> None:
        """Forget everything and invalidate in-flight reads."""
        self._entries.clear()
        self._generations.clear()
        self._epoch += 1

    def __len__(self) -> int:
        return len(self._entries)
