"""The in-memory index of every key's current version.

Reads never ask the database which version is current: this index answers.
It is loaded in full at start-up and then kept up to date incrementally from
the database's change sequence (``seq``, one per committed change, allocated
in commit order because writes are serialised), so it converges on the
database no matter what: local writes apply at once, NATS notifications from
other replicas trigger an immediate catch-up, and a periodic catch-up covers
notifications lost while NATS was unreachable.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KeyState:
    """Current state of one key: its version, whether that version is a delete, and its change sequence."""

    version: int
    deleted: bool
    seq: int


@dataclass(slots=True)
class _Namespace:
    keys: dict[str, KeyState] = field(default_factory=dict)
    revision: int = 0
    live: int = 0
    sorted_live: list[str] | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """What :meth:`VersionIndex.apply` replaced: the previous state (None for a new key)."""

    namespace: str
    key: str
    previous: KeyState | None
    current: KeyState


class VersionIndex:
    """Namespace -> key -> :class:`KeyState`, with per-namespace revision and live-key counts."""

    def __init__(self) -> None:
        """An empty index (nothing seen yet: ``last_seq`` 0)."""
        self._namespaces: dict[str, _Namespace] = {}
        #: Highest change sequence read from the database by a catch-up.
        self.last_seq = 0
        #: Incremented on every change; lets callers cache things derived from the whole index.
        self.generation = 0

    def get(self, namespace: str, key: str) -> KeyState | None:
        """The state of a key, or None when it never existed (as far as this index knows)."""
        ns = self._namespaces.get(namespace)
        return ns.keys.get(key) if ns else None

    def apply(self, namespace: str, key: str, state: KeyState) -> Change | None:
        """Record ``state`` unless the index already holds that change or a later one.

        Returns the :class:`Change` made, or None when ``state`` was not newer.
        """
        ns = self._namespaces.get(namespace)
        if ns is None:
            ns = self._namespaces[namespace] = _Namespace()
        previous = ns.keys.get(key)
        if previous is not None and previous.seq >= state.seq:
            return None
        ns.keys[key] = state
        was_live = previous is not None and not previous.deleted
        if was_live != (not state.deleted):
            ns.live += -1 if was_live else 1
            ns.sorted_live = None
        ns.revision = max(ns.revision, state.seq)
        self.generation += 1
        return Change(namespace, key, previous, state)

    def revision(self, namespace: str) -> int:
        """Highest change sequence in ``namespace`` (0 when it has never held a key)."""
        ns = self._namespaces.get(namespace)
        return ns.revision if ns else 0

    def live_keys(self, namespace: str) -> list[str]:
        """Keys of ``namespace`` that currently hold a value, sorted (cached until the key set changes)."""
        ns = self._namespaces.get(namespace)
        if ns is None:
            return []
        if ns.sorted_live is None:
            ns.sorted_live = sorted(k for k, s in ns.keys.items() if not s.deleted)
        return ns.sorted_live

    def namespaces(self) -> list[tuple[str, int, int]]:
        """``(namespace, live keys, revision)`` for every namespace with a live key, sorted by name."""
        return sorted((name, ns.live, ns.revision) for name, ns in self._namespaces.items() if ns.live > 0)

    def current_versions(self) -> dict[tuple[str, str], int]:
        """``(namespace, key) -> version`` of every live key (used to prune the disk cache)."""
        return {
            (name, key): s.version
            for name, ns in self._namespaces.items()
            for key, s in ns.keys.items()
            if not s.deleted
        }
