"""Benchmark: the local runtime from `up` to all-healthy, against its start-up floor, and idle memory.

Runs `aether-sandbox up --runtime local` N times (default 3) on a private state
directory with warm caches (a first, unmeasured run initialises PostgreSQL),
taking the platform down in between, and prints:

- the time from `up` to all-healthy: each run and the median;
- the start-up floor measured in the same run: the slowest single component
  alone (its own launch-to-healthy time) plus the import time of the Python
  components spread over the cores, and the ratio of the median to it;
- the memory of the running platform, idle, per component and in total.

Usage: python benchmarks/local_up.py [--runs 3] [--profile full]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = [sys.executable, "-m", "sandbox.cli"]


def sandbox(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, check=False, timeout=300)


def import_seconds(module: str) -> float:
    """CPU seconds a fresh interpreter spends importing a component's app module."""
    code = (
        "import resource, importlib;"
        f"importlib.import_module({module!r});"
        "u = resource.getrusage(resource.RUSAGE_SELF); print(u.ru_utime + u.ru_stime)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="full")
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="aether-bench-"))
    home.chmod(0o711)
    env = {**os.environ, "AETHER_SANDBOX_HOME": str(home), "AETHER_SANDBOX_PORTS": "dynamic"}
    try:
        warm = sandbox("up", "--runtime", "local", "--profile", args.profile, "--json", env=env)
        if warm.returncode != 0:
            sys.exit(f"warm-up `up` failed:\n{warm.stderr}")
        sandbox("down", "--runtime", "local", env=env)
        times, last = [], None
        for _ in range(args.runs):
            started = time.monotonic()
            result = sandbox("up", "--runtime", "local", "--profile", args.profile, "--json", env=env)
            elapsed = time.monotonic() - started
            if result.returncode != 0:
                sys.exit(f"`up` failed:\n{result.stderr}")
            times.append(elapsed)
            last = json.loads(result.stdout)
            time.sleep(3)  # idle, then read memory
            status = json.loads(sandbox("status", "--runtime", "local", "--json", env=env).stdout)
            sandbox("down", "--runtime", "local", env=env)
        running = [c for c in status["components"] if c["state"] == "running"]
        slowest = max(running, key=lambda c: c["startup_s"] or 0)
        from sandbox.spec.loader import default_spec

        spec = default_spec()
        modules = [spec.component(c["name"]).module for c in running if spec.component(c["name"]).module]
        imports = {m: import_seconds(m + ".app") if _has_app(m) else import_seconds(m) for m in modules}
        cores = os.cpu_count() or 1
        floor = (slowest["startup_s"] or 0) + sum(imports.values()) / cores
        median = statistics.median(times)
        print(f"components running: {len(running)} ({', '.join(c['name'] for c in running)})")
        unavailable = [c["name"] for c in last["components"] if c["state"] == "unavailable"]
        print(f"unavailable here: {', '.join(unavailable) or 'none'}")
        print(f"up to all-healthy: runs {', '.join(f'{t:.2f}s' for t in times)}; median {median:.2f}s")
        print(f"start-up floor: slowest component alone {slowest['name']} {slowest['startup_s']:.2f}s"
              f" + imports {sum(imports.values()):.2f} CPU-s / {cores} cores = {floor:.2f}s;"
              f" median / floor = {median / floor:.2f}")
        total = 0.0
        for c in running:
            mem = c["usage"]["memory_mib"] or 0.0
            total += mem
            print(f"  {c['name']:24s} {mem:7.1f} MiB idle (limit {c['usage']['memory_limit_mib']} MiB)")
        print(f"idle memory, whole platform: {total:.0f} MiB ({total / 1024:.2f} GiB)")
    finally:
        sandbox("down", "--runtime", "local", "--volumes", env=env)
        shutil.rmtree(home, ignore_errors=True)


def _has_app(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module + ".app") is not None


if __name__ == "__main__":
    main()
