"""``load run``: set up, drive locust in its own process, sample resources, judge, keep everything.

A run's directory holds the plan (owner only: it carries the run's tokens),
locust's own CSV files and log, the latency timeline (``timeline-*.jsonl``),
the resource samples (``resources.jsonl``), the verdicts (``result.json``) and
the HTML report.  Locust is spawned as ``python -m locust`` (it patches the
standard library with gevent on import, so it never runs in this process); in
distributed mode as one master and ``workers`` workers on loopback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sandbox.errors import EnvironmentProblem, InvalidInput
from sandbox.infra.ports import free_port
from sandbox.load import catalog
from sandbox.load.catalog import Profile
from sandbox.load.sampling import Sampler, read_samples
from sandbox.load.verdicts import Verdict, Window, judge, read_timeline
from sandbox.runtimes.base import Runtime
from sandbox.spec.budget import budget_of
from sandbox.spec.models import PlatformSpec

LOCUSTFILE = Path(__file__).resolve().parents[2] / "loadtests" / "locustfile.py"
Progress = Callable[[str], None]


@dataclass
class RunOptions:
    """What ``load run`` was asked for."""

    profile: str = "smoke"
    services: list[str] = field(default_factory=list)
    """Components to load; empty = every component of the catalog the sandbox runs."""
    users: int | None = None
    """Users per service in every loaded stage (overrides the profile)."""
    duration_s: float | None = None
    """Total length (the profile's stages are stretched or shrunk to it)."""
    workers: int = 0
    """Locust workers (distributed mode: a master and this many workers); 0 = one local process."""
    replay_speed: float | None = None
    """Pace of the replay driving the ingest (times real time); default from the catalog."""


@dataclass
class RunResult:
    """What a run produced."""

    run_dir: Path
    profile: Profile
    services: list[str]
    started_at: float
    windows: list[Window]
    verdicts: list[Verdict]
    runtime: str
    enforced: dict[str, bool]
    notes: list[str] = field(default_factory=list)
    setup_s: float = 0.0
    report: Path | None = None
    """The run's HTML report."""

    @property
    def passed(self) -> bool:
        return all(v.passed for v in self.verdicts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_dir": str(self.run_dir), "profile": self.profile.name, "runtime": self.runtime,
            "passed": self.passed, "started_at": self.started_at, "setup_s": self.setup_s,
            "report": str(self.report) if self.report else None,
            "stages": [{"phase": w.phase, "users": w.users, "start": w.start, "end": w.end} for w in self.windows],
            "services": self.services, "verdicts": [v.as_dict() for v in self.verdicts], "notes": self.notes,
        }


def resolve_profile(options: RunOptions) -> Profile:
    """The profile asked for, with ``--users`` and ``--duration`` applied."""
    try:
        profile = catalog.PROFILES[options.profile]
    except KeyError:
        raise InvalidInput(f"no load profile '{options.profile}'",
                           hint="profiles: " + ", ".join(catalog.PROFILES)) from None
    if options.users is not None and options.users < 1:
        raise InvalidInput("--users must be at least 1")
    if options.duration_s is not None and options.duration_s < 5:
        raise InvalidInput("--duration must be at least 5 seconds")
    return profile.scaled(users=options.users, seconds=options.duration_s)


def _targets(runtime: Runtime, wanted: list[str]) -> tuple[dict[str, str], list[str], dict[str, bool]]:
    """URLs of the running components, the services to load, and whether each one's budget is enforced."""
    status = runtime.status()
    for _ in range(3):  # a supervisor busy under load may miss one status call: ask again before giving up
        if status.up:
            break
        time.sleep(2)
        status = runtime.status()
    if not status.up:
        raise EnvironmentProblem(f"sandbox '{status.name}' is not up", hint="run `aether-sandbox up` first")
    by_name = {c.name: c for c in status.components}
    known = [p.component for p in catalog.SERVICES]
    if unknown := [s for s in wanted if s not in known]:
        raise InvalidInput(f"no load plan for {', '.join(unknown)}", hint="load plans exist for: " + ", ".join(known))
    chosen = wanted or [s for s in known if s in by_name and by_name[s].state != "unavailable"]
    down = [f"{s}: {by_name[s].state if s in by_name else 'not in this sandbox'}" for s in chosen
            if s not in by_name or by_name[s].state != "running"]
    if down:
        raise EnvironmentProblem("not running: " + "; ".join(down), hint="see `aether-sandbox status`")
    urls = {c.name: c.url or f"http://127.0.0.1:{c.port}" for c in status.components
            if c.port and c.state == "running"}
    enforced = {c.name: c.usage.enforced for c in status.components}
    return urls, chosen, enforced


def _admin_password(runtime: Runtime, sandbox: str) -> str:
    """The bootstrap admin's password the sandbox keeps in its state directory (either runtime)."""
    from sandbox.runtimes.local.state import StateDir

    state = getattr(runtime, "state", None) or StateDir.for_name(sandbox)
    creds, _ = state.credentials()
    return creds["bootstrap_admin_password"]


def _locust_argv(run_dir: Path, classes: list[str], workers: int, port: int) -> list[list[str]]:
    base = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--skip-log-setup",
            "--loglevel", "WARNING"]
    out = ["--csv", str(run_dir / "locust"), "--csv-full-history", "--json-file", str(run_dir / "locust"),
           "--logfile", str(run_dir / "locust.log"), "--stop-timeout", "5", "--only-summary"]
    if not workers:
        return [base + out + classes]
    master = base + out + ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                           "--expect-workers", str(workers), "--expect-workers-max-wait", "30"] + classes
    worker = base + ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                     "--logfile", str(run_dir / "locust-worker.log")] + classes
    return [master] + [worker] * workers


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def _drive(run_dir: Path, classes: list[str], workers: int, seconds: float, say: Progress) -> int:
    """Run locust to the end of the profile; its exit code (1 = some requests failed, which verdicts judge)."""
    argvs = _locust_argv(run_dir, classes, workers, free_port())
    env = {**os.environ, "AETHER_LOAD_PLAN": str(run_dir / "plan.json"), "PYTHONUNBUFFERED": "1"}
    procs: list[subprocess.Popen] = []
    try:
        with (run_dir / "locust.out").open("ab") as out:
            for argv in argvs:
                procs.append(subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                              start_new_session=True, cwd=run_dir))
            say(f"locust: {len(classes)} user class(es), {seconds:.0f} s" + (f", {workers} worker(s)" if workers else ""))
            try:
                code = procs[0].wait(timeout=seconds + 90)
            except subprocess.TimeoutExpired:
                raise EnvironmentProblem(f"locust did not stop within {seconds + 90:.0f} s",
                                         hint=f"see {run_dir / 'locust.log'}") from None
    finally:
        _stop(procs)
    if code not in (0, 1):
        tail = (run_dir / "locust.out").read_text(errors="replace").splitlines()[-15:]
        raise EnvironmentProblem(f"locust exited with code {code}: " + " | ".join(tail[-3:]),
                                 hint=f"see {run_dir / 'locust.out'} and {run_dir / 'locust.log'}")
    return code


class _IngestReplay:
    """Drives the ingest with a shipped session, looped at ``speed`` times real time, for the run's length."""

    def __init__(self, urls: dict[str, str], speed: float) -> None:
        self.venue, self.ingest, self.speed = urls["kraken-venue"], urls["kraken-ws-ingest"], speed
        self.before: dict[str, Any] = {}

    def __enter__(self) -> _IngestReplay:
        from sandbox.replay.run import call

        call("POST", f"{self.venue}/admin/replay", {"session": catalog.REPLAY_SESSION, "speed": self.speed,
                                                    "loop": True, "start": "subscribe"}, timeout=120)
        loaded = call("GET", f"{self.venue}/admin/replay")
        symbols = loaded["replay"]["symbols"]
        call("POST", f"{self.ingest}/subscriptions", {"api": loaded["replay"]["api"], "channels": ["book", "trade"],
                                                       "symbols": symbols, "depth": 10, "fresh": True, "wait_s": 30},
             timeout=60)
        self.before = call("GET", f"{self.ingest}/stats")
        return self

    def __exit__(self, *_: object) -> None:
        from sandbox.replay.run import call

        self.after = call("GET", f"{self.ingest}/stats")
        self.venue_status = call("GET", f"{self.venue}/admin/replay")
        # Loading the session again without starting it stops the looping feed.
        call("POST", f"{self.venue}/admin/replay", {"session": catalog.REPLAY_SESSION, "start": "manual"}, timeout=120)

    def summary(self) -> str:
        frames = lambda s: int(((s or {}).get("connection") or {}).get("frames") or 0)  # noqa: E731
        return (f"ingest: replay of {catalog.REPLAY_SESSION} looped at {self.speed:g}x; "
                f"{frames(self.after) - frames(self.before):,} frames received during the run")


@contextmanager
def _venue_rate_limits_off(venue: str, notes: list[str]) -> Iterator[None]:
    """The simulated venue without Kraken's rate limits for the run: a load test measures the OMS, not the limiter."""
    from sandbox.replay.run import ServiceError, call

    try:
        previous = call("PUT", f"{venue}/admin/rate-limits", {"enabled": False}).get("previous", True)
    except ServiceError as exc:
        notes.append(f"the venue's rate limits stay on ({exc}): orders beyond Kraken's limits are refused by it")
        yield
        return
    notes.append("the venue's Kraken rate limits were off during the run (restored after it)")
    try:
        yield
    finally:
        call("PUT", f"{venue}/admin/rate-limits", {"enabled": previous})


def run(runtime: Runtime, spec: PlatformSpec, options: RunOptions, *, sandbox: str = "default",
        runs_dir: Path | None = None, progress: Progress | None = None) -> RunResult:
    """One load run against the running sandbox, judged; see the module docstring for what is kept."""
    from sandbox.load.setup import Target, prepare
    from sandbox.runtimes.local.state import StateDir

    say = progress or (lambda _: None)
    profile = resolve_profile(options)
    urls, services, enforced = _targets(runtime, options.services)
    state = getattr(runtime, "state", None) or StateDir.for_name(sandbox)
    say(f"set-up: users, tokens, instrument, key, strategy for {len(services)} service(s)")
    context = prepare(Target(urls, _admin_password(runtime, sandbox)), list(urls))
    run_dir = (runs_dir or state.root / "load-runs") / f"{time.strftime('%Y%m%dT%H%M%S')}-{profile.name}-{os.getpid()}"
    run_dir.mkdir(parents=True)
    stages, t = [], 0.0
    for s in profile.stages:
        stages.append({"users": s.users, "phase": s.phase, "start_s": t, "end_s": t + s.seconds})
        t += s.seconds
    plans = [catalog.service(s) for s in services]
    plan = {"context": context, "run_dir": str(run_dir), "stages": stages, "rps_per_user": profile.rps_per_user,
            "user_classes": [p.user_class for p in plans], "mix": {p.component: p.mix for p in plans}}
    fd = os.open(run_dir / "plan.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(plan, handle, indent=1)

    notes: list[str] = []
    replay = None
    if "kraken-ws-ingest" in services:
        speed = options.replay_speed or catalog.service("kraken-ws-ingest").extra["replay_speed"]
        replay = _IngestReplay(urls, speed)
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        if "oms-service" in services and "kraken-venue" in urls:
            stack.enter_context(_venue_rate_limits_off(urls["kraken-venue"], notes))
        if replay:
            stack.enter_context(replay)
        sampler = stack.enter_context(Sampler(runtime, services, run_dir / "resources.jsonl"))
        _drive(run_dir, plan["user_classes"], options.workers, profile.seconds, say)
    if replay:
        notes.append(replay.summary())
    load_after = os.getloadavg()[0]
    if max(load_before, load_after) > (os.cpu_count() or 1):
        notes.append(f"the machine was busy (load average {load_before:.1f} before, {load_after:.1f} after, on "
                     f"{os.cpu_count()} CPUs): latencies include waiting for a CPU, here and in the load generator")
    notes += [f"resource sampling: {e}" for e in sampler.errors[:3]]

    if not (run_dir / "started.json").exists():
        raise EnvironmentProblem("locust never started the test", hint=f"see {run_dir / 'locust.out'} and {run_dir / 'locust.log'}")
    started_at = json.loads((run_dir / "started.json").read_text())["t"]
    windows = [Window(started_at + s["start_s"], started_at + s["end_s"], s["phase"], s["users"]) for s in stages]
    buckets = read_timeline(sorted(run_dir.glob("timeline-*.jsonl")))
    samples = read_samples(run_dir / "resources.jsonl")
    verdicts = [judge(p.component, windows, buckets, samples, budget_of(spec.component(p.component)), p.objectives,
                      enforced=enforced.get(p.component, False)) for p in plans]
    for v in verdicts:
        if not enforced.get(v.service, False):
            v.notes.append("budget measured only (not enforced by the runtime)")
    result = RunResult(run_dir, profile, services, started_at, windows, verdicts, runtime.name, enforced, notes,
                       context.get("setup_s", 0.0))
    from sandbox.load.report import render

    result.report = run_dir / "report.html"
    result.report.write_text(render(result.as_dict(), verdicts, windows, buckets, samples))
    (run_dir / "result.json").write_text(json.dumps(result.as_dict(), indent=1, default=str))
    return result
