"""What one replica of each service sustains within its objectives and budget, against a bare FastAPI floor.

Run: ``.venv/bin/python benchmarks/load_capacity.py [--services risk-service,oms-service] [--step-seconds 15]
[--name SANDBOX] [--json]``

Without ``--name`` it brings a private local sandbox up (its own state
directory, kernel-assigned ports; every service a load plan covers) and takes
it down at the end; with ``--name`` it uses that running sandbox.  For every
service it runs ``load capacity`` (the ``step`` profile, the service alone)
and then, in the same run, the same step profile against a bare FastAPI
``GET /ping`` (uvicorn, uvloop, httptools: ``benchmarks/kit_overhead.py
--serve bare``) held by a cgroup to the same CPU quota (``--bare-cpu-m``,
default 200m) and driven by the same locust process type.

Two figures per service, because on a shared machine they answer different
questions:

* **sustained req/s**: the highest step that held every objective (p95, p99,
  errors) with CPU and memory within the limit: what a replica delivered
  here, load generator and neighbours included;
* **req/s at the CPU limit**: the limit divided by the CPU time one request
  cost in that step (cgroup accounting): what the budget allows when CPU binds,
  independent of how busy the machine was.

Both are compared with the bare endpoint's (the issue's target: check
endpoints at least half of bare).  For oms-service the order rate is
reported too (POST /v1/orders share of its requests, from locust's stats).
Nothing is asserted; everything binds 127.0.0.1 and is stopped by PID.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandbox.infra.ports import free_port  # noqa: E402
from sandbox.load import catalog  # noqa: E402
from sandbox.load.capacity import assess, measure, steps_of  # noqa: E402
from sandbox.load.runner import _drive  # noqa: E402
from sandbox.load.sampling import Sampler  # noqa: E402
from sandbox.load.verdicts import Window  # noqa: E402
from sandbox.runtimes.base import ComponentStatus, Usage  # noqa: E402
from sandbox.spec.budget import Basis, Budget, DimensionBudget  # noqa: E402

CHECKS = [p.component for p in catalog.SERVICES if p.check_endpoint]


class _BareRuntime:
    """Just enough of a Runtime for the sampler: the bare app's cgroup accounting."""

    name = "bare"

    def __init__(self, cgroup) -> None:
        self.cgroup = cgroup

    def stats(self) -> list[ComponentStatus]:
        mem = self.cgroup.memory_bytes()
        return [ComponentStatus("bare-fastapi", "running", usage=Usage(
            cpu_m=self.cgroup.cpu_millicores(), memory_mib=None if mem is None else mem / 2**20, enforced=True))]


def bare(step_seconds: float, cpu_m: int, root: Path) -> dict:
    """The step profile against a bare FastAPI endpoint held to ``cpu_m``."""
    from sandbox.runtimes.local.cgroups import Cgroup, detect

    hierarchy, why = detect()
    if hierarchy is None:
        return {"error": f"no writable cgroup ({why}): the bare floor needs one"}
    cg = Cgroup(hierarchy, f"aether-bench/bare-{os.getpid()}")
    cg.create(memory_mib=512)
    cg.limit_cpu(cpu_m)
    port = free_port()
    log = (root / "bare.log").open("wb")
    proc = subprocess.Popen([sys.executable, str(REPO / "benchmarks" / "kit_overhead.py"), "--serve", "bare"],  # noqa: S603
                            env={**os.environ, "AETHER_PORT": str(port)}, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=cg.join, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"the bare app did not start: {(root / 'bare.log').read_text()[-500:]}") from None
                time.sleep(0.2)
        profile = catalog.PROFILES["step"].scaled(seconds=step_seconds * len(catalog.PROFILES["step"].stages))
        run_dir = root / f"bare-{cpu_m}m"
        run_dir.mkdir()
        stages, t = [], 0.0
        for s in profile.stages:
            stages.append({"users": s.users, "phase": s.phase, "start_s": t, "end_s": t + s.seconds})
            t += s.seconds
        context = {"urls": {"bare-fastapi": f"http://127.0.0.1:{port}"}, "tokens": {"admin": "-"},
                   "account": "-", "symbol": "XBT/USD", "strategy": "-", "namespace": "-", "run_tag": "bare"}
        (run_dir / "plan.json").write_text(json.dumps({
            "context": context, "run_dir": str(run_dir), "stages": stages, "rps_per_user": profile.rps_per_user,
            "user_classes": ["BareUser"], "mix": {"bare-fastapi": {"ping": 1}}}))
        with Sampler(_BareRuntime(cg), ["bare-fastapi"], run_dir / "resources.jsonl"):
            _drive(run_dir, ["BareUser"], 0, profile.seconds, print)
        started = json.loads((run_dir / "started.json").read_text())["t"]
        windows = [Window(started + s["start_s"], started + s["end_s"], s["phase"], s["users"]) for s in stages]
        result = SimpleNamespace(run_dir=run_dir, windows=windows, enforced={"bare-fastapi": True}, profile=profile)
        budget = Budget(DimensionBudget(cpu_m, cpu_m, Basis.SANDBOX), DimensionBudget(512, 512, Basis.SANDBOX))
        steps = steps_of(result, "bare-fastapi", budget, catalog.CHECKS)
        return assess("bare-fastapi", steps, budget, catalog.CHECKS, {"base": 1, "production": None})
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=10)
        log.close()
        cg.remove()
        for directory in {hierarchy.cpu, hierarchy.memory, hierarchy.cpuacct or hierarchy.cpu}:
            try:
                (directory / "aether-bench").rmdir()  # the parent, once no benchmark holds a child in it
            except OSError:
                pass


def order_share(run_dir: str) -> float | None:
    """POST /v1/orders as a share of the OMS's requests, from locust's final stats."""
    path = Path(run_dir) / "locust_stats.csv"
    if not path.exists():
        return None
    rows = [r for r in csv.DictReader(path.open()) if r["Name"].startswith("oms-service ")]
    total = sum(int(r["Request Count"]) for r in rows)
    orders = sum(int(r["Request Count"]) for r in rows if r["Name"] == "oms-service POST /v1/orders")
    return orders / total if total else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--services", default=",".join([*CHECKS, "oms-service"]))
    parser.add_argument("--step-seconds", type=float, default=15.0)
    parser.add_argument("--bare-cpu-m", type=int, default=200, help="also measure the bare floor at this quota")
    parser.add_argument("--name", help="use this running sandbox instead of a private one")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    services = [s for s in args.services.split(",") if s]

    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.spec.loader import default_spec

    root = Path(tempfile.mkdtemp(prefix="aether-capacity-"))
    root.chmod(0o711)
    private = args.name is None
    if private:
        os.environ.update(AETHER_SANDBOX_HOME=str(root / "home"), AETHER_SANDBOX_PORTS="dynamic")
    spec = default_spec()
    rt, _ = choose(spec, RuntimeChoice.LOCAL, args.name or "capacity")
    load_before = os.getloadavg()
    try:
        if private:
            print("bringing a private sandbox up ...", flush=True)
            rt.up([p.component for p in catalog.SERVICES], timeout=240)
        report = measure(rt, spec, services, {"oms-service": 100.0}, step_seconds=args.step_seconds,
                         sandbox=args.name or "capacity", progress=print)
        for s in report["services"]:  # read before a private sandbox (and its run directories) is removed
            s["order_share"] = order_share(s["run_dir"]) if s["service"] == "oms-service" else None
        limits = sorted({s["cpu_limit_m"] for s in report["services"]} | {args.bare_cpu_m})
        floors = {m: bare(args.step_seconds, m, root) for m in limits}
    finally:
        if private:
            rt.down(volumes=True)
        shutil.rmtree(root, ignore_errors=True)
    report["bare"] = floors
    report["load_average"] = {"before": load_before, "after": os.getloadavg(), "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(report, indent=1, default=str))
        return
    _print(report, args.bare_cpu_m)


def _print(report: dict, bare_cpu_m: int) -> None:
    floors = report["bare"]
    print(f"\nload average {report['load_average']['before'][0]:.1f} -> {report['load_average']['after'][0]:.1f} "
          f"on {report['load_average']['cpus']} CPUs; steps of {report['step_seconds']:g} s")
    for m, floor in floors.items():
        print(f"bare FastAPI GET /ping at {m}m: sustained {(floor.get('sustained') or {}).get('rps')} req/s (p99 "
              f"{(floor.get('sustained') or {}).get('p99_ms')} ms), {floor.get('cpu_ms_per_request')} ms CPU/request "
              f"-> {floor.get('rps_at_cpu_limit')} req/s at the limit; binds: {floor.get('binds')}")
    print(f"{'service':24} {'limit':>6} {'sust. req/s':>11} {'p99 ms':>7} {'CPU ms/req':>10} {'req/s @limit':>12} "
          f"{'vs bare (sust/CPU)':>19}  binds")
    ratio = lambda a, b: f"{a / b:.0%}" if a and b else "—"  # noqa: E731
    for s in report["services"]:
        sus = s.get("sustained") or {}
        floor = floors.get(s["cpu_limit_m"]) or {}
        b_sus, b_cpu = (floor.get("sustained") or {}).get("rps"), floor.get("rps_at_cpu_limit")
        print(f"{s['service']:24} {s['cpu_limit_m']:>5}m {sus.get('rps', '—')!s:>11} {sus.get('p99_ms', '—')!s:>7} "
              f"{s.get('cpu_ms_per_request') or '—'!s:>10} {s.get('rps_at_cpu_limit') or '—'!s:>12} "
              f"{ratio(sus.get('rps'), b_sus) + ' / ' + ratio(s.get('rps_at_cpu_limit'), b_cpu):>19}  {s['binds']}")
        if share := s.get("order_share"):
            orders = (sus.get("rps") or 0) * share
            at_limit = (s.get("rps_at_cpu_limit") or 0) * share
            print(f"{'':24} orders are {share:.0%} of its requests: {orders:.1f} orders/s sustained, "
                  f"{at_limit:.1f} orders/s at its CPU limit (target 100 at p99 <= 100 ms)")


if __name__ == "__main__":
    main()
