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

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None

    def millicores(self, root: int) -> float | None:
        """CPU since the previous call, in millicores; ``None`` on the first call."""
        ticks = sum(_cpu_ticks(p.pid) for p in process_tree(root))
        now = time.monotonic()
        previous, self._last = self._last, (now, ticks)
        if previous is None or now <= previous[0] or ticks < previous[1]:
            return None
        return (ticks - previous[1]) / _TICKS * 1000 / (now - previous[0])
