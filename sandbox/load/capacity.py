"""``load capacity``: the step profile per service, and what one replica sustains within objectives and budget.

Each service is loaded alone (so it has the machine's spare capacity to
itself) with the ``step`` profile: stages of rising users.  Every step is
judged like a ``peak`` stage (objectives, CPU and memory within the limit);
the highest step that holds, before the first that does not, is what one
replica sustains.  The first failing step says which resource binds:
``memory`` over its limit, ``cpu`` pinned at its quota, or ``latency`` /
``errors`` while CPU is still below the limit (the service waits on
something else: a dependency, a lock, the database, the load generator).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.errors import InvalidInput
from sandbox.load import catalog
from sandbox.load.catalog import Objectives
from sandbox.load.verdicts import PINNED_SHARE, Stats, judge_phase, read_timeline, window_stats
from sandbox.spec.budget import Budget, budget_of

SETTLE_S = 3.0
"""Seconds skipped at the start of every step (users spawning, queues filling)."""

NOT_STEPPED = {"kraken-ws-ingest": "pace-driven by a replay, not by requests: see benchmarks/ingest_budget.py"}


@dataclass
class Step:
    """One step of the search: its users, the rate they offered, and what came of it."""

    users: int
    offered_rps: float
    stats: Stats
    failures: list[str]

    @property
    def held(self) -> bool:
        return not self.failures


def parse_targets(items: list[str]) -> dict[str, float]:
    """``["oms-service=100"]`` -> ``{"oms-service": 100.0}``."""
    targets: dict[str, float] = {}
    for item in items:
        name, sep, rate = item.partition("=")
        try:
            value = float(rate)
        except ValueError:
            value = -1.0
        if not sep or not name or value <= 0:
            raise InvalidInput(f"--target {item!r}: expected SERVICE=RPS with a positive rate, e.g. oms-service=100")
        targets[name.strip()] = value
    return targets


BINDS = {
    "memory": "memory above its limit",
    "cpu": "CPU pinned at its quota",
    "errors": "errors while CPU was below its limit",
    "latency": "latency while CPU was below its limit: the service waits on something else "
               "(a dependency, the database, a lock) or the machine and load generator are saturated",
    "none": "nothing: the step profile's top step held (add --workers or raise the steps)",
    "unmeasured": "not measured",
}
"""What each binding resource means, shown under the capacity table."""


def binding(step: Step, budget: Budget, objectives: Objectives) -> str:
    """Which resource a failing step ran out of first: a key of :data:`BINDS`."""
    st = step.stats
    if st.memory_max_mib is not None and st.memory_max_mib > budget.memory_mib.limit:
        return "memory"
    if (st.cpu_at_limit_share or 0) >= PINNED_SHARE:
        return "cpu"
    if st.requests and st.error_ratio > objectives.max_error_ratio:
        return "errors"
    return "latency"


def assess(service: str, steps: list[Step], budget: Budget, objectives: Objectives, replicas: dict[str, int | None],
           target_rps: float | None = None) -> dict[str, Any]:
    """The capacity of one replica from its steps (in rising order)."""
    # The highest step that held, even past a failed lower one: on a shared machine a low step can miss a p99
    # by noise. What binds is read from the first failing step above it (or from the first step, if none held).
    held = [s for s in steps if s.held]
    sustained = max(held, key=lambda s: s.stats.rps) if held else None
    above = steps[steps.index(sustained) + 1:] if sustained else steps
    first_failure = next((s for s in above if not s.held), None)
    if first_failure is not None:
        binds = binding(first_failure, budget, objectives)
    elif steps:
        binds = "none"
    else:
        binds = "unmeasured"
    cpu_ms = cpu_per_request(sustained, steps)
    needed = None
    if target_rps and sustained and sustained.stats.rps:
        needed = math.ceil(target_rps / sustained.stats.rps)
    return {
        "service": service,
        "cpu_limit_m": budget.cpu_m.limit, "memory_limit_mib": budget.memory_mib.limit,
        "objectives": asdict(objectives),
        "sustained": _step_dict(sustained) if sustained else None,
        "first_failure": _step_dict(first_failure) if first_failure else None,
        "binds": binds, "binds_detail": BINDS[binds],
        "cpu_ms_per_request": cpu_ms,
        "rps_at_cpu_limit": round(budget.cpu_m.limit / cpu_ms, 1) if cpu_ms else None,
        "target_rps": target_rps, "replicas_needed": needed, "spec_replicas": replicas,
        "steps": [_step_dict(s) for s in steps],
    }


def cpu_per_request(sustained: Step | None, steps: list[Step]) -> float | None:
    """CPU milliseconds one request costs, at the busiest step not pinned at the quota.

    The busiest step, because an idle service's own background work inflates the cost per request at low
    rates; not pinned, because a throttled service's CPU says nothing about demand.  CPU accounting stays
    valid when latency objectives fail (a busy machine), so this, and the rate the budget allows where
    CPU binds, are reported even when no step held.
    """
    candidates = sorted((s for s in steps if (s.stats.cpu_at_limit_share or 0) < PINNED_SHARE),
                        key=lambda s: s.stats.rps, reverse=True)
    for step in candidates:
        if step.stats.rps and step.stats.cpu_mean_m:
            return round(step.stats.cpu_mean_m / step.stats.rps, 3)
    return None


def _step_dict(step: Step) -> dict[str, Any]:
    st = step.stats
    return {"users": step.users, "offered_rps": step.offered_rps, "rps": st.rps, "p50_ms": st.p50_ms,
            "p95_ms": st.p95_ms, "p99_ms": st.p99_ms, "error_ratio": round(st.error_ratio, 4),
            "cpu_mean_m": st.cpu_mean_m, "cpu_at_limit_share": st.cpu_at_limit_share,
            "memory_max_mib": st.memory_max_mib, "held": step.held, "failures": step.failures}


def steps_of(result: Any, service: str, budget: Budget, objectives: Objectives) -> list[Step]:
    """Judge every stage of a ``step`` run of ``service`` on its own."""
    from sandbox.load.sampling import read_samples

    buckets = read_timeline(sorted(result.run_dir.glob("timeline-*.jsonl")))
    samples = read_samples(result.run_dir / "resources.jsonl")
    steps = []
    for window in result.windows:
        stats = window_stats(service, [window], buckets, samples, settle_s=SETTLE_S, cpu_limit_m=budget.cpu_m.limit)
        verdict = judge_phase("peak", stats, budget, objectives, enforced=result.enforced.get(service, False), tail=0)
        steps.append(Step(window.users, window.users * result.profile.rps_per_user, stats, verdict.failures))
    return steps


def measure(runtime: Any, spec: Any, services: list[str], targets: dict[str, float], *, step_seconds: float = 20.0,
            workers: int = 0, sandbox: str = "default", progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Step every service in turn and assess it; the JSON-ready capacity report."""
    from sandbox.load.runner import RunOptions, run

    say = progress or (lambda _: None)
    known = [p.component for p in catalog.SERVICES]
    if unknown := [s for s in [*services, *targets] if s not in known]:
        raise InvalidInput(f"no load plan for {', '.join(unknown)}", hint="load plans exist for: " + ", ".join(known))
    chosen = services or [s for s in known if s not in NOT_STEPPED]
    status = {c.name: c for c in runtime.status().components}
    chosen = [s for s in chosen if s in status and status[s].state != "unavailable"] if not services else chosen
    profile = catalog.PROFILES["step"]
    notes = [f"{s}: not stepped ({why})" for s, why in NOT_STEPPED.items() if s in chosen or not services]
    chosen = [s for s in chosen if s not in NOT_STEPPED]
    out = []
    for service in chosen:
        plan = catalog.service(service)
        component = spec.component(service)
        budget = budget_of(component)
        say(f"{service}: step profile, {len(profile.stages)} steps of {step_seconds:g} s")
        result = run(runtime, spec, RunOptions("step", [service], None, step_seconds * len(profile.stages), workers),
                     sandbox=sandbox, progress=say)
        steps = steps_of(result, service, budget, plan.objectives)
        replicas = {"base": component.replicas.base, "production": component.replicas.production}
        assessed = assess(service, steps, budget, plan.objectives, replicas, targets.get(service))
        assessed["report"] = str(result.report)
        assessed["run_dir"] = str(result.run_dir)
        out.append(assessed)
    return {"step_seconds": step_seconds, "rps_per_user": profile.rps_per_user, "services": out, "notes": notes}
