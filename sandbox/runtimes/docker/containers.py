"""Reading containers: limits as the engine and the kernel applied them, usage now, health, progress words."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sandbox.runtimes.base import EngineUnavailable
from sandbox.runtimes.docker.api import Engine


def epoch(stamp: str) -> float:
    """Seconds since the epoch of an engine timestamp (nanosecond precision, ``Z``)."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    return datetime.fromisoformat(head + "+00:00").timestamp() + float("0." + (frac or "0")[:6])


def applied_limits(inspect: dict[str, Any]) -> tuple[float | None, float | None, float | None]:
    """(CPU millicores, memory limit MiB, memory reservation MiB) as the engine applied them."""
    host = inspect.get("HostConfig") or {}
    cpu = None
    if host.get("NanoCpus"):
        cpu = host["NanoCpus"] / 1e6
    elif (host.get("CpuQuota") or 0) > 0 and host.get("CpuPeriod"):
        cpu = host["CpuQuota"] / host["CpuPeriod"] * 1000
    memory = host["Memory"] / 2**20 if host.get("Memory") else None
    reservation = host["MemoryReservation"] / 2**20 if host.get("MemoryReservation") else None
    return cpu, memory, reservation


def kernel_limits(container_id: str) -> tuple[float | None, float | None]:
    """(CPU millicores, memory MiB) from the container's cgroup v1 files, where this host exposes them."""
    cpu = memory = None
    try:
        quota = int(Path(f"/sys/fs/cgroup/cpu/docker/{container_id}/cpu.cfs_quota_us").read_text())
        period = int(Path(f"/sys/fs/cgroup/cpu/docker/{container_id}/cpu.cfs_period_us").read_text())
        cpu = quota / period * 1000 if quota > 0 else None
        memory = int(Path(f"/sys/fs/cgroup/memory/docker/{container_id}/memory.limit_in_bytes").read_text()) / 2**20
    except (OSError, ValueError):
        pass
    return cpu, memory


def usage_now(stats: dict[str, Any]) -> tuple[float | None, float | None]:
    """(CPU millicores, memory MiB) of one stats sample, computed as ``docker stats`` does."""
    cpu = memory = None
    try:
        now, before = stats["cpu_stats"], stats["precpu_stats"]
        cpu_delta = now["cpu_usage"]["total_usage"] - before["cpu_usage"]["total_usage"]
        system_delta = now["system_cpu_usage"] - before.get("system_cpu_usage", 0)
        cpus = now.get("online_cpus") or len(now["cpu_usage"].get("percpu_usage") or [1])
        if system_delta > 0 and before.get("system_cpu_usage"):
            cpu = round(cpu_delta / system_delta * cpus * 1000, 1)
    except (KeyError, TypeError):
        pass
    mem = stats.get("memory_stats") or {}
    if "usage" in mem:
        inner = mem.get("stats") or {}
        inactive = inner.get("total_inactive_file", inner.get("inactive_file", 0))
        memory = round((mem["usage"] - inactive) / 2**20, 1)
    return cpu, memory


def progress_word(summary: dict[str, Any] | None) -> str:
    """A progress word for one container from the engine's list entry."""
    if summary is None:
        return "waiting for its dependencies"
    state, text = summary.get("State", ""), summary.get("Status", "")
    if state == "running":
        if "(healthy)" in text:
            return "running"
        if "(unhealthy)" in text:
            return "unhealthy"
        return "starting"
    if state in ("exited", "dead", "restarting"):
        return f"crashed ({text})"
    return state or "created"


def health_output(state: dict[str, Any]) -> str:
    log = (state.get("Health") or {}).get("Log") or []
    return f"health check: {log[-1].get('Output', '').strip()[:200]}" if log else "health check failing"


def safe_stats(engine: Engine, container: str) -> dict[str, Any] | None:
    try:
        return engine.stats(container)
    except (LookupError, EngineUnavailable, ValueError):
        return None
