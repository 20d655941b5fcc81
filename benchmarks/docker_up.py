"""Benchmark: the docker runtime from `up` to all-healthy (target: 45 s or less with images built).

Runs `aether-sandbox up --runtime docker --profile full` N times (default 3),
each on a fresh sandbox (new state directory, so new volumes: the database is
initialised every time, as on a first `up`), and `down --volumes` after each.
Prints each run's time to all-healthy with the moment every component turned
healthy, the median, and the applied limits of the last run as `status --json`
shows them.  Needs the images (`aether-sandbox images build --offline`).

Usage: python benchmarks/docker_up.py [--runs 3] [--profile full]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-m", "sandbox.cli"]
TARGET_S = 45.0


def sandbox(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, check=False, timeout=600)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", default="full")
    args = parser.parse_args()

    seconds = []
    last_status = None
    for run in range(1, args.runs + 1):
        home = Path(tempfile.mkdtemp(prefix="aether-bench-docker-"))
        home.chmod(0o711)
        env = {**os.environ, "AETHER_SANDBOX_HOME": str(home), "AETHER_SANDBOX_PORTS": "dynamic"}
        try:
            up = sandbox("up", "--runtime", "docker", "--profile", args.profile, "--timeout", "300", env=env)
            if up.returncode != 0:
                sys.exit(f"run {run}: `up` failed:\n{up.stderr[-3000:]}")
            healthy = {}
            for line in up.stderr.splitlines():
                if m := re.match(r"\s*([\d.]+)s (\S+): running$", line):
                    healthy[m.group(2)] = float(m.group(1))
            total = float(re.search(r"up in ([\d.]+) s", up.stdout).group(1))
            seconds.append(total)
            order = ", ".join(f"{n} {t:.1f}" for n, t in sorted(healthy.items(), key=lambda x: x[1]))
            print(f"run {run}: {total:.1f} s to all-healthy ({len(healthy)} components; healthy at: {order})")
            last_status = json.loads(sandbox("status", "--runtime", "docker", "--json", env=env).stdout)
        finally:
            sandbox("down", "--runtime", "docker", "--volumes", env=env)
            shutil.rmtree(home, ignore_errors=True)
    median = statistics.median(seconds)
    print(f"median of {len(seconds)}: {median:.1f} s (target {TARGET_S:.0f} s: {'met' if median <= TARGET_S else 'NOT met'})")
    if last_status:
        print("applied limits of the last run (status --json, usage):")
        for c in last_status["components"]:
            u = c["usage"]
            print(f"  {c['name']:<22} {c['state']:<11} cpu {u['cpu_m']}m / limit {u['cpu_limit_m']}m, "
                  f"memory {u['memory_mib']} MiB / limit {u['memory_limit_mib']} MiB; {u['enforcement'] or c['detail']}")


if __name__ == "__main__":
    main()
