"""Budgets enforced by the kernel: one cgroup per local component.

cgroup v1 (separate ``cpu`` and ``memory`` hierarchies) and cgroup v2 (one
unified tree with both controllers) are supported.  Where neither is writable
the runtime measures only, and says so.

A process joins its cgroup itself, between fork and exec (``join`` is used as
``preexec_fn``), so every process it forks later is held to the same budget
from its first instruction.  Servers that drop privileges join after the drop,
so the cgroup's membership file is handed to their account first.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
#: The CFS period the CPU quota is expressed in (the kernel's default).
CFS_PERIOD_US = 100_000
CPU_WINDOW_S = 1.0
"""Shortest window CPU use is averaged over (see :meth:`Cgroup.cpu_millicores`)."""


def _mounts() -> list[tuple[str, str, str]]:
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    return [(p[1], p[2], p[3]) for line in lines if len(p := line.split()) >= 4]


@dataclass(frozen=True)
class Hierarchy:
    """Where the cpu and memory controllers are mounted."""

    version: int
    cpu: Path
    memory: Path
    cpuacct: Path | None = None
    """v1 only, where cpuacct is mounted apart from cpu."""

    def describe(self) -> str:
        """One line for ``status``."""
        return f"cgroup v{self.version}"


def detect() -> tuple[Hierarchy | None, str]:
    """The usable hierarchy, or ``None`` and why not."""
    mounts = _mounts()
    v1 = {Path(point).name: Path(point) for point, fstype, opts in mounts if fstype == "cgroup"}
    if "cpu" not in v1:  # joint mounts such as cpu,cpuacct
        for point, fstype, opts in mounts:
            if fstype == "cgroup" and "cpu" in opts.split(","):
                v1.setdefault("cpu", Path(point))
    if "cpu" in v1 and "memory" in v1:
        if all(os.access(v1[c], os.W_OK) for c in ("cpu", "memory")):
            acct = v1.get("cpuacct")
            return Hierarchy(1, v1["cpu"], v1["memory"], acct if acct != v1["cpu"] else None), "cgroup v1 cpu and memory controllers"
        return None, "cgroup v1 controllers are not writable (run as root to enforce budgets)"
    for point, fstype, _ in mounts:
        if fstype != "cgroup2":
            continue
        try:
            controllers = set(Path(point, "cgroup.controllers").read_text().split())
        except OSError:
            continue
        if {"cpu", "memory"} <= controllers and os.access(point, os.W_OK):
            return Hierarchy(2, Path(point), Path(point)), f"cgroup v2 at {point}"
    return None, "no writable cgroup with cpu and memory controllers"


class Cgroup:
    """The cgroup of one component: its CPU quota, memory limit and accounting."""

    def __init__(self, hierarchy: Hierarchy, relative: str) -> None:
        self.h = hierarchy
        self.relative = relative
        self.cpu_dir = hierarchy.cpu / relative
        self.memory_dir = hierarchy.memory / relative
        self.cpuacct_dir = (hierarchy.cpuacct / relative) if hierarchy.cpuacct else self.cpu_dir
        self._last_cpu: tuple[float, int] | None = None
        self._cpu_rate: float | None = None

    # ---- set-up ------------------------------------------------------------------

    def create(self, *, memory_mib: int, owner_uid: int | None = None) -> None:
        """Create the cgroup with its memory limit; the CPU quota comes with :meth:`limit_cpu`."""
        if self.h.version == 2:
            self._enable_v2_controllers()
        for directory in self._dirs():
            directory.mkdir(parents=True, exist_ok=True)
        limit = memory_mib * 1024 * 1024
        if self.h.version == 1:
            (self.memory_dir / "memory.limit_in_bytes").write_text(str(limit))
            swap = self.memory_dir / "memory.memsw.limit_in_bytes"
            if swap.exists():  # no swap beyond the limit, so the limit is the limit
                try:
                    swap.write_text(str(limit))
                except OSError:
                    pass
        else:
            (self.memory_dir / "memory.max").write_text(str(limit))
            (self.memory_dir / "memory.swap.max").write_text("0") if (self.memory_dir / "memory.swap.max").exists() else None
        self.limit_cpu(None)
        if owner_uid is not None and owner_uid != os.geteuid():
            for path in self._membership_files():
                os.chown(path, owner_uid, -1)

    def _enable_v2_controllers(self) -> None:
        parent = self.h.cpu
        for part in Path(self.relative).parts:
            try:
                (parent / "cgroup.subtree_control").write_text("+cpu +memory")
            except OSError:
                pass
            parent = parent / part
            parent.mkdir(exist_ok=True)

    def limit_cpu(self, cpu_m: int | None) -> None:
        """Set the CPU quota to ``cpu_m`` millicores; ``None`` lifts it."""
        if self.h.version == 1:
            quota = -1 if cpu_m is None else cpu_m * CFS_PERIOD_US // 1000
            (self.cpu_dir / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
            (self.cpu_dir / "cpu.cfs_quota_us").write_text(str(quota))
        else:
            quota = "max" if cpu_m is None else str(cpu_m * CFS_PERIOD_US // 1000)
            (self.cpu_dir / "cpu.max").write_text(f"{quota} {CFS_PERIOD_US}")

    def _dirs(self) -> list[Path]:
        return list(dict.fromkeys((self.cpu_dir, self.cpuacct_dir, self.memory_dir)))

    def _membership_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self._dirs()]

    def join(self) -> None:
        """Move the calling process into this cgroup (used between fork and exec)."""
        pid = str(os.getpid())
        for path in self._membership_files():
            with open(path, "w") as handle:  # noqa: PTH123 - no pathlib objects after fork
                handle.write(pid)

    def add(self, pid: int) -> None:
        """Move process ``pid`` into this cgroup."""
        for path in self._membership_files():
            try:
                path.write_text(str(pid))
            except OSError:
                pass  # it exited meanwhile

    # ---- accounting --------------------------------------------------------------

    def pids(self) -> list[int]:
        """Processes in the cgroup."""
        try:
            return [int(p) for p in (self.memory_dir / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def memory_bytes(self) -> int | None:
        """Memory charged to the cgroup now, page cache excluded where the kernel says how much."""
        try:
            if self.h.version == 1:
                usage = int((self.memory_dir / "memory.usage_in_bytes").read_text())
                stat = self._stat("memory.stat")
                return usage - stat.get("total_inactive_file", 0)
            usage = int((self.memory_dir / "memory.current").read_text())
            return usage - self._stat("memory.stat").get("inactive_file", 0)
        except (OSError, ValueError):
            return None

    def _stat(self, name: str, directory: Path | None = None) -> dict[str, int]:
        out = {}
        for line in ((directory or self.memory_dir) / name).read_text().splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                out[key] = int(value)
        return out

    def cpu_usage_ns(self) -> int | None:
        """Total CPU time used by the cgroup, in nanoseconds."""
        try:
            if self.h.version == 1:
                return int((self.cpuacct_dir / "cpuacct.usage").read_text())
            for line in (self.cpu_dir / "cpu.stat").read_text().splitlines():
                if line.startswith("usage_usec "):
                    return int(line.split()[1]) * 1000
        except (OSError, ValueError):
            return None
        return None

    def cpu_millicores(self) -> float | None:
        """CPU used over the latest window of at least ``CPU_WINDOW_S``, in millicores (None until one has passed).

        Several readers call this (the supervisor's status, load-test sampling, the metrics exporter): a
        window per call would let each shorten the others' to a few milliseconds, so the figure is one
        shared window, advanced only once it is long enough.
        """
        now_ns = self.cpu_usage_ns()
        if now_ns is None:
            return None
        now = time.monotonic()
        if self._last_cpu is None:
            self._last_cpu = (now, now_ns)
            return None
        then, then_ns = self._last_cpu
        if now - then >= CPU_WINDOW_S:
            self._cpu_rate = (now_ns - then_ns) / 1e6 / (now - then)
            self._last_cpu = (now, now_ns)
        return self._cpu_rate

    def oom_kills(self) -> int:
        """How many processes the kernel killed for exceeding the memory limit."""
        try:
            if self.h.version == 1:
                return self._stat("memory.oom_control").get("oom_kill", 0)
            return self._stat("memory.events").get("oom_kill", 0)
        except OSError:
            return 0

    def throttled(self) -> int:
        """How many CFS periods the quota throttled."""
        try:
            return self._stat("cpu.stat", self.cpu_dir).get("nr_throttled", 0)
        except OSError:
            return 0

    def remove(self) -> None:
        """Delete the cgroup (it must hold no process)."""
        for directory in self._dirs():
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)
