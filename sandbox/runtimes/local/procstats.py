"""CPU use of a process tree from /proc, for components no cgroup accounts for."""

from __future__ import annotations

import os
import time
from pathlib import Path

from sandbox.infra.procstats import process_tree

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])  # utime + stime


class TreeCpu:
    """Millicores used by a process tree between successive calls."""

    def __init__(self, window_s: float = 1.0) -> None:
        self._last: tuple[float, int] | None = None
        self._rate: float | None = None
        self.window_s = window_s

    def millicores(self, root: int) -> float | None:
        """CPU over the latest window of at least ``window_s``, in millicores; ``None`` until one has passed.

        One shared window, advanced only once it is long enough, so several readers calling at their own
        pace do not shorten each other's windows to a few milliseconds.
        """
        ticks = sum(_cpu_ticks(p.pid) for p in process_tree(root))
        now = time.monotonic()
        if self._last is None or ticks < self._last[1]:  # first call, or a new process tree (restart)
            self._last, self._rate = (now, ticks), None
            return None
        if now - self._last[0] >= self.window_s:
            self._rate = (ticks - self._last[1]) / _TICKS * 1000 / (now - self._last[0])
            self._last = (now, ticks)
        return self._rate
