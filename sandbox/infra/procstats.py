"""Process facts read from /proc (Linux): liveness, process trees, memory.

A server's workers are not always in its process group (PostgreSQL puts every
child in its own group), so "everything a server runs" is its process tree,
found through parent PIDs. On a system without /proc these functions return
empty results rather than failing: they serve cleanup sweeps and diagnostics.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessId:
    """A PID plus its start time, which together name one process even if the PID is reused later."""

    pid: int
    start_ticks: int


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state onwards, or None when gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name is parenthesised and may hold spaces: split after it.
    return text.rsplit(")", 1)[1].split()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` names a live (not zombie) process."""
    if not _PROC.is_dir():
        try:
            os.kill(pid, 0)  # also true for zombies: good enough without /proc
        except ProcessLookupError:
            return False
        return True
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def process_tree(root: int) -> list[ProcessId]:
    """``root`` and all its live descendants (children, grandchildren, ...)."""
    if not _PROC.is_dir():
        return []
    children: dict[int, list[int]] = {}
    start: dict[int, int] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is None or fields[0] == "Z":
            continue
        pid = int(entry.name)
        children.setdefault(int(fields[1]), []).append(pid)
        start[pid] = int(fields[19])  # field 22 of stat: start time in clock ticks
    found: list[ProcessId] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        if pid in start:
            found.append(ProcessId(pid, start[pid]))
        pending.extend(children.get(pid, []))
    return found


def _still_running(proc: ProcessId) -> bool:
    fields = _stat_fields(proc.pid)
    # Gone, a zombie, or the PID now names another process: not ours any more.
    return fields is not None and fields[0] != "Z" and int(fields[19]) == proc.start_ticks


def kill_surviving(processes: list[ProcessId], *, timeout: float = 5.0) -> list[ProcessId]:
    """SIGKILL each of ``processes`` still running and wait until they are gone.

    SIGKILL is delivered asynchronously, and re-parented workers are not ours
    to reap, so this polls until each has exited (or is a zombie). Returns the
    ones still running after ``timeout`` (normally none).
    """
    for proc in processes:
        if _still_running(proc):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    survivors = [p for p in processes if _still_running(p)]
    while survivors and time.monotonic() < deadline:
        time.sleep(0.01)
        survivors = [p for p in survivors if _still_running(p)]
    return survivors


def _listening_inodes(port: int) -> set[int]:
    """Socket inodes of TCP listeners on ``port`` (any address, IPv4 and IPv6)."""
    inodes: set[int] = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (_PROC / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # local_address is HEXIP:HEXPORT; state 0A is LISTEN; field 9 the inode.
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(int(fields[9]))
    return inodes


def _socket_inodes(pid: int) -> set[int]:
    inodes: set[int] = set()
    try:
        fds = list((_PROC / str(pid) / "fd").iterdir())
    except OSError:
        return inodes
    for fd in fds:
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def tree_listens_on(root: int, ports: list[int]) -> bool | None:
    """Whether ``root`` or a descendant holds the listener of every port in ``ports``.

    Tells our server's listener from a stranger's on the same port. None when
    /proc cannot answer (no /proc), so callers fall back to trusting the probe.
    """
    if not (_PROC / "net" / "tcp").exists():
        return None
    listeners = {port: _listening_inodes(port) for port in ports}
    if not all(listeners.values()):
        return False  # nobody listens yet: no need to look at processes
    # The leader usually holds the listeners itself (PostgreSQL's postmaster
    # does); walking the whole tree scans all of /proc, so do it only if not.
    owned = _socket_inodes(root)
    if not all(inodes & owned for inodes in listeners.values()):
        for proc in process_tree(root):
            owned |= _socket_inodes(proc.pid)
    return all(inodes & owned for inodes in listeners.values())


@dataclass(frozen=True)
class MemoryUsage:
    """Memory of a process tree: RSS summed (overcounts shared pages) and PSS summed (fair share)."""

    processes: int
    rss_bytes: int
    pss_bytes: int

    @property
    def rss_mib(self) -> float:
        """Summed RSS in MiB."""
        return self.rss_bytes / 1048576

    @property
    def pss_mib(self) -> float:
        """Summed PSS in MiB (shared memory such as PostgreSQL's buffers counted once overall)."""
        return self.pss_bytes / 1048576


def _rollup_kib(pid: int, key: str) -> int:
    try:
        for line in (_PROC / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_memory(root: int) -> MemoryUsage:
    """Memory used by ``root`` and its descendants (a server and its workers)."""
    pids = [p.pid for p in process_tree(root)]
    rss = sum(_rollup_kib(pid, "Rss") for pid in pids)
    pss = sum(_rollup_kib(pid, "Pss") for pid in pids)
    return MemoryUsage(len(pids), rss * 1024, pss * 1024)
