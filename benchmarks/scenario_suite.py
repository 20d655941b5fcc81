"""Benchmark: the shipped scenario suite's wall time against a running local platform (target: 60 s or less).

Brings a platform up in a private sandbox (the OMS and everything it depends
on; kernel-assigned ports) unless ``--name`` names a running one, then runs
``aether-sandbox scenario run scenarios/ --json`` once per ``--parallel`` value
(``--repeat`` times each), and prints per run the wall time, scenarios,
passed, the slowest scenarios, and the median per parallelism; finally takes
the platform it started down.

Usage: python benchmarks/scenario_suite.py [--parallel 1 3] [--repeat 1] [--name SANDBOX] [PATH...]
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
REPO = Path(__file__).resolve().parents[1]
TARGET_S = 60.0


def sandbox(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env, check=False, timeout=timeout,
                          cwd=REPO)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=[str(REPO / "scenarios")])
    parser.add_argument("--parallel", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--name", help="use this running sandbox instead of bringing one up")
    args = parser.parse_args()

    env = dict(os.environ)
    root = None
    name = args.name
    if name is None:
        root = Path(tempfile.mkdtemp(prefix="aether-bench-scenarios-"))
        root.chmod(0o711)
        env.update(AETHER_SANDBOX_HOME=str(root), AETHER_SANDBOX_PORTS="dynamic")
        name = "bench-scenarios"
        started = time.monotonic()
        up = sandbox("up", "oms-service", "--runtime", "local", "--name", name, "--json", env=env)
        if up.returncode != 0:
            print(up.stdout[-2000:], up.stderr[-2000:], file=sys.stderr)
            return 1
        print(f"platform up in {time.monotonic() - started:.1f} s (sandbox {name}, {root})")
    failed = False
    try:
        for parallel in args.parallel:
            walls = []
            for attempt in range(args.repeat):
                started = time.monotonic()
                run = sandbox("scenario", "run", *args.paths, "--parallel", str(parallel), "--json",
                              "--runtime", "local", "--name", name, env=env)
                wall = time.monotonic() - started
                try:
                    report = json.loads(run.stdout)
                except ValueError:
                    print(run.stdout[-2000:], run.stderr[-2000:], file=sys.stderr)
                    return 1
                walls.append(wall)
                failed |= report["passed"] != report["total"]
                slow = sorted(report["scenarios"], key=lambda s: -s["seconds"])[:3]
                print(f"parallel {parallel} run {attempt + 1}: {report['total']} scenarios, {report['passed']} passed, "
                      f"wall {wall:.1f} s (suite {report['seconds']:.1f} s, CLI start-up included in wall); slowest: "
                      + ", ".join(f"{s['name']} {s['seconds']:.1f} s" for s in slow))
            median = statistics.median(walls)
            verdict = "within" if median <= TARGET_S else "OVER"
            print(f"parallel {parallel}: median wall {median:.1f} s, {verdict} the {TARGET_S:.0f} s target")
    finally:
        if root is not None:
            sandbox("down", "--runtime", "local", "--name", name, "--volumes", env=env)
            shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
