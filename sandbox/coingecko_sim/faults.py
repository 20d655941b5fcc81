"""Deterministic fault injection: queued HTTP errors served to the next matching requests, in order."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass


@dataclass
class Fault:
    """Answer the next ``count`` requests whose path starts with ``path`` with ``status``."""

    status: int
    count: int = 1
    path: str = "/api/v3/"
    retry_after: int | None = None
    """Seconds in a ``Retry-After`` header (429 and 503 carry one by default: 1 s)."""


def parse_faults(text: str) -> list[Fault]:
    """``"429x2@/api/v3/coins/markets,500"``: status, ``xCOUNT`` and ``@PATH`` optional (env form)."""
    faults = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        spec, _, path = part.partition("@")
        status, _, count = spec.partition("x")
        faults.append(Fault(int(status), int(count or 1), path or "/api/v3/"))
    return faults


class FaultPlan:
    """The queue of faults; thread-safe, consumed first-come first-served."""

    def __init__(self, faults: list[Fault] | None = None) -> None:
        self._lock = threading.Lock()
        self._queue: list[Fault] = list(faults or [])
        self.injected: dict[int, int] = {}

    def add(self, faults: list[Fault]) -> None:
        """Queue ``faults`` after those already queued."""
        with self._lock:
            self._queue.extend(f for f in faults if f.count > 0)

    def clear(self) -> None:
        """Drop every queued fault."""
        with self._lock:
            self._queue.clear()

    def take(self, path: str) -> Fault | None:
        """The fault to serve to a request for ``path`` (consuming one of its count), or ``None``."""
        with self._lock:
            for fault in self._queue:
                if path.startswith(fault.path):
                    fault.count -= 1
                    if fault.count <= 0:
                        self._queue.remove(fault)
                    self.injected[fault.status] = self.injected.get(fault.status, 0) + 1
                    return fault
        return None

    def pending(self) -> list[dict]:
        """The faults still queued."""
        with self._lock:
            return [asdict(f) for f in self._queue]
