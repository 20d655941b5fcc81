"""Measure start-up time, stop time and memory of each embedded server.

Run: ``.venv/bin/python benchmarks/infra_startup.py [--repeat N]``

For each server: a cold start (empty data dir; includes initdb for
PostgreSQL), then N warm restarts on the same data dir. Reported:

* cold: wall time of the first ``start()`` (setup + launch + readiness);
* warm: median wall time of ``start()`` on an existing data dir;
* ready: median launch-to-ready time of the warm starts;
* stop: median wall time of ``stop()``;
* RSS / PSS: memory of the server's process tree right after start (RSS
  summed over processes counts shared pages several times; PSS does not).

Everything binds 127.0.0.1 on free ports and is stopped before exit.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.nats import EmbeddedNats
from sandbox.infra.ports import free_port
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.process import ManagedServer
from sandbox.infra.redis import EmbeddedRedis

FACTORIES: dict[str, Callable[[Path], ManagedServer]] = {
    "postgres": lambda d: EmbeddedPostgres(d, free_port()),
    "redis": lambda d: EmbeddedRedis(d, free_port()),
    "nats": lambda d: EmbeddedNats(d, free_port(), free_port()),
    "kafka (tansu)": lambda d: EmbeddedKafka(d, free_port()),
}


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def measure(name: str, directory: Path, repeat: int) -> dict[str, float | int]:
    """Start/stop one server ``repeat`` + 1 times and return its figures."""
    server = FACTORIES[name](directory)
    try:
        cold = _timed(server.start)
        memory = server.memory()
        stops = [_timed(server.stop)]
        warms: list[float] = []
        readies: list[float] = []
        for _ in range(repeat):
            warms.append(_timed(server.start))
            readies.append(server.startup_seconds or 0.0)
            stops.append(_timed(server.stop))
    finally:
        server.stop()
    return {
        "cold": cold,
        "warm": statistics.median(warms) if warms else float("nan"),
        "ready": statistics.median(readies) if readies else float("nan"),
        "stop": statistics.median(stops),
        "procs": memory.processes if memory else 0,
        "rss": memory.rss_mib if memory else 0.0,
        "pss": memory.pss_mib if memory else 0.0,
    }


def main() -> None:
    """Measure every server and print a table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="warm restarts per server (default 5)")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="aether-infra-bench-"))
    root.chmod(0o711)  # as root, PostgreSQL runs as 'nobody' and must enter it
    try:
        header = ("server", "cold s", "warm s", "ready s", "stop s", "procs", "RSS MiB", "PSS MiB")
        print(f"{header[0]:<15}" + "".join(f"{h:>9}" for h in header[1:]))
        for name in FACTORIES:
            figures = measure(name, root / name.split()[0], args.repeat)
            print(
                f"{name:<15}{figures['cold']:>9.3f}{figures['warm']:>9.3f}{figures['ready']:>9.3f}"
                f"{figures['stop']:>9.3f}{figures['procs']:>9}{figures['rss']:>9.1f}{figures['pss']:>9.1f}"
            )
        print(f"(cpus={os.cpu_count()}, euid={os.geteuid()}, warm figures are medians of {args.repeat})")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
