"""Benchmark: kraken-ws-ingest at real-time pace, >= 20 symbols at depth 100, inside its budget (100m CPU / 128 MiB).

The ingest runs in a cgroup of its own (v1 or v2, see
sandbox/runtimes/local/cgroups.py) holding it to the platform spec's budget
exactly as the local runtime does: the 128 MiB memory limit from its first
instruction, the 100m CPU quota (10 ms per 100 ms period) from the moment it is
healthy.  The venue and the broker run unconstrained beside it.  The session is
the replay core's `bench-v2-book100-24sym` (24 symbols, book depth 100, book and
trade), generated with its seeded generator when it is not on disk.

Every second the cgroup's CPU (millicores over the last second) and memory
(usage minus inactive page cache) are sampled; at the end the replay is
verified like `aether-sandbox replay` (records counted by consuming, checksums,
gaps), and the figures are printed against the budget.  Where no writable
cgroup exists, the ingest's process is measured only, and the output says so.

Usage: python benchmarks/ingest_budget.py [--speed 1] [--session NAME]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.ports import free_port
from sandbox.ingest.harness import replay_platform
from sandbox.replay.run import FIXTURES, ReplayRequest, prepare, replay
from sandbox.runtimes.local import cgroups

CPU_BUDGET_M = 100
MEMORY_BUDGET_MIB = 128
PRESET = "bench-v2-book100-24sym"


def session_path(name: str, tmp: Path) -> str:
    """The shipped session, or the replay core's preset generated now."""
    if Path(name).is_file() or any(FIXTURES.glob(f"{name}.ndjson*")):
        return name
    from sandbox.replay.generator import PRESETS, generate_file

    path = tmp / f"{name}.ndjson.gz"
    generate_file(PRESETS[name], path, name=name)
    return str(path)


class Sampler(threading.Thread):
    """CPU and memory of the ingest once a second (cgroup accounting, else the process)."""

    def __init__(self, cgroup: cgroups.Cgroup | None, pid: int) -> None:
        super().__init__(daemon=True)
        self.cgroup = cgroup
        self.pid = pid
        self.cpu: list[float] = []
        self.memory: list[float] = []
        self.stop = threading.Event()
        self._last: tuple[float, float] | None = None

    def run(self) -> None:
        while not self.stop.wait(1.0):
            cpu, mem = self._sample()
            if cpu is not None:
                self.cpu.append(cpu)
            if mem is not None:
                self.memory.append(mem)

    def _sample(self) -> tuple[float | None, float | None]:
        if self.cgroup is not None:
            mem = self.cgroup.memory_bytes()
            return self.cgroup.cpu_millicores(), None if mem is None else mem / 2**20
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            rss = int(Path(f"/proc/{self.pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
        except (OSError, IndexError, ValueError):
            return None, None
        now = time.monotonic()
        last, self._last = self._last, (now, ticks)
        return (None if last is None else (ticks - last[1]) / (now - last[0]) * 1000), rss


def _throttled(cgroup: cgroups.Cgroup) -> int | None:
    """CFS periods in which the quota throttled the ingest (``cpu.stat`` of the cpu controller)."""
    try:
        for line in (cgroup.cpu_dir / "cpu.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == "nr_throttled":
                return int(value)
    except (OSError, ValueError):
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default=PRESET)
    parser.add_argument("--speed", type=float, default=1.0, help="1 = real time (the budget question); more to shorten")
    parser.add_argument("--linger-ms", type=int, default=None, help="the ingest's INGEST_LINGER_MS (default: its own)")
    args = parser.parse_args()

    hierarchy, why = cgroups.detect()
    with tempfile.TemporaryDirectory(prefix="aether-bench-budget-") as tmp:
        request = ReplayRequest(session_path(args.session, Path(tmp)), speed=args.speed, timeout_s=120)
        session, manifest = prepare(request)
        print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs; ingest linger.ms "
              f"{args.linger_ms if args.linger_ms is not None else 'default'}")
        print(f"session {session.name}: {manifest.api}, {len(manifest.symbols)} symbols at depth {manifest.book_depth}, "
              f"{manifest.frames:,} frames over {manifest.duration_s:.0f} s "
              f"({manifest.frames / manifest.duration_s:,.0f} frames/s at 1x); replayed at {args.speed:g}x")
        cgroup = None
        if hierarchy is not None:
            cgroup = cgroups.Cgroup(hierarchy, f"aether-bench/ingest-{os.getpid()}")
            cgroup.create(memory_mib=MEMORY_BUDGET_MIB)
            print(f"enforced: {hierarchy.describe()}, memory limit {MEMORY_BUDGET_MIB} MiB from the first instruction, "
                  f"CPU quota {CPU_BUDGET_M}m once healthy")
        else:
            print(f"measured only (NOT enforced): {why}")
        try:
            with EmbeddedKafka(Path(tmp) / "kafka", free_port()) as kafka, replay_platform(
                Path(tmp) / "platform", kafka.bootstrap, ingest_preexec=cgroup.join if cgroup else None,
                ingest_env={} if args.linger_ms is None else {"INGEST_LINGER_MS": str(args.linger_ms)},
            ) as platform:
                if cgroup is not None:
                    cgroup.limit_cpu(CPU_BUDGET_M)
                assert platform.ingest.pid is not None
                sampler = Sampler(cgroup, platform.ingest.pid)
                sampler.start()
                started = time.monotonic()
                report = replay(platform.endpoints, request, prepared=(session, manifest))
                elapsed = time.monotonic() - started
                sampler.stop.set()
                sampler.join()
                throttled = _throttled(cgroup) if cgroup else None
                ooms = cgroup.oom_kills() if cgroup else None
        finally:
            if cgroup is not None:
                cgroup.remove()
                for directory in {d.parent for d in (cgroup.cpu_dir, cgroup.cpuacct_dir, cgroup.memory_dir)}:
                    try:
                        directory.rmdir()  # the "aether-bench" parent, when no other run uses it
                    except OSError:
                        pass

    cpu, mem = sampler.cpu, sampler.memory
    busy = cpu[: max(1, int(manifest.duration_s / args.speed))]  # the replay's seconds, not the wind-down
    print()
    print(f"{'':34}{'median':>10}{'mean':>10}{'p95':>10}{'max':>10}{'budget':>10}")
    if busy:
        p95 = sorted(busy)[int(0.95 * (len(busy) - 1))]
        print(f"{'CPU (millicores, 1 s samples)':34}{statistics.median(busy):>10.1f}{statistics.mean(busy):>10.1f}"
              f"{p95:>10.1f}{max(busy):>10.1f}{CPU_BUDGET_M:>10}")
    if mem:
        p95m = sorted(mem)[int(0.95 * (len(mem) - 1))]
        print(f"{'memory (MiB)':34}{statistics.median(mem):>10.1f}{statistics.mean(mem):>10.1f}"
              f"{p95m:>10.1f}{max(mem):>10.1f}{MEMORY_BUDGET_MIB:>10}")
    if throttled is not None:
        print(f"CFS periods throttled: {throttled}; OOM kills: {ooms}")
    lat, ilat = report.latency, report.ingest_latency
    print(f"replay: {elapsed:.1f} s, verified={report.ok}, records {report.records_consumed:,}/{report.records_expected:,}, "
          f"checksums {report.checksums_verified:,}/{report.checksums_expected:,} verified, {report.checksums_failed} failed, "
          f"gaps {report.gaps}, reconnects {report.reconnects}")
    print(f"rate: {report.achieved_rate or 0:,.0f} frames/s played of {report.requested_rate or 0:,.0f} requested; "
          f"symbols kept: {len(report.symbols)} at depth {report.depth}")
    print(f"latency venue send -> Kafka ack: p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms "
          f"(in the ingest: p50 {ilat.get('p50')} ms, p99 {ilat.get('p99')} ms)")
    fits = busy and max(mem or [0]) <= MEMORY_BUDGET_MIB and statistics.median(busy) <= CPU_BUDGET_M and report.ok
    print(f"verdict: {'within' if fits else 'NOT within'} {CPU_BUDGET_M}m / {MEMORY_BUDGET_MIB} MiB "
          f"({'enforced by the kernel' if hierarchy else 'measured only'})")
    for failure in report.failures():
        print(f"  failure: {failure}")


if __name__ == "__main__":
    main()
