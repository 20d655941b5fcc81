"""Judging a run: per service, latency and errors against objectives, CPU and memory against the budget.

Pure functions over what a run kept (the latency timeline, the resource
samples, the stages' windows), so they are tested without servers.  The budget
policy is the spec's: load in ``nominal`` stages must stay within the request,
in ``peak`` stages within the limit (:mod:`sandbox.spec.budget`).
"""

from __future__ import annotations

import json
import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.load.catalog import Objectives
from sandbox.load.sampling import Sample
from sandbox.spec.budget import Budget

SATURATED = 0.95
"""A CPU sample at this fraction of an enforced limit counts as at the limit (the quota throttles it)."""

PINNED_SHARE = 0.25
"""CPU is *pinned* at its limit when at least this share of a phase's samples are at the limit: a
sustained condition, not one garbage collection or a one-off write."""

TAIL_REQUESTS = 3
"""Requests that must lie above a percentile for it to be judged: with fewer, the "p99" of a short run is
its slowest request or two (one outlier on a busy machine), not a percentile."""


def judgeable(requests: int, q: float, tail: int = TAIL_REQUESTS) -> bool:
    """Whether ``requests`` put at least ``tail`` above the ``q`` quantile (p99: 300, p95: 60)."""
    return requests * (1 - q) >= tail - 1e-9


@dataclass(frozen=True)
class Window:
    """A stretch of the run judged one way: ``[start, end)`` in epoch seconds."""

    start: float
    end: float
    phase: str
    users: int = 0

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Bucket:
    """One component's requests in one second."""

    t: int
    service: str
    n: int
    fail: int
    hist: dict[int, int]


def read_timeline(paths: Iterable[Path]) -> list[Bucket]:
    """Every bucket of every locust process's timeline, merged per (second, component)."""
    merged: dict[tuple[int, str], Bucket] = {}
    for path in paths:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            d = json.loads(line)
            key = (int(d["t"]), d["service"])
            b = merged.setdefault(key, Bucket(key[0], key[1], 0, 0, defaultdict(int)))
            b.n += d["n"]
            b.fail += d["fail"]
            for ms, c in d["h"].items():
                b.hist[int(ms)] += c
    return sorted(merged.values(), key=lambda b: (b.t, b.service))


def percentile(hist: dict[int, int], q: float) -> float | None:
    """The ``q`` quantile (0..1) of a latency histogram (ms -> count)."""
    total = sum(hist.values())
    if not total:
        return None
    rank = q * total
    seen = 0
    for ms in sorted(hist):
        seen += hist[ms]
        if seen >= rank:
            return float(ms)
    return float(max(hist))


@dataclass
class Stats:
    """Requests and resources of one service within one window (or several of one phase)."""

    seconds: float = 0.0
    requests: int = 0
    failures: int = 0
    p50_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    rps: float = 0.0
    """Successful requests per second."""
    cpu_mean_m: float | None = None
    cpu_p95_m: float | None = None
    cpu_at_limit_share: float | None = None
    """Share of samples at the enforced CPU limit (see :data:`SATURATED`)."""
    memory_max_mib: float | None = None
    samples: int = 0

    @property
    def error_ratio(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


def window_stats(service: str, windows: list[Window], buckets: list[Bucket], samples: list[Sample],
                 settle_s: float = 0.0, cpu_limit_m: float | None = None) -> Stats:
    """Requests and resource use of ``service`` over ``windows`` (the first ``settle_s`` of each skipped)."""
    spans = [(w.start + settle_s, w.end) for w in windows if w.end - w.start > settle_s]
    inside = lambda t: any(a <= t < b for a, b in spans)  # noqa: E731 - a local predicate
    hist: dict[int, int] = defaultdict(int)
    s = Stats(seconds=sum(b - a for a, b in spans))
    for b in buckets:
        if b.service == service and inside(b.t):
            s.requests += b.n
            s.failures += b.fail
            for ms, c in b.hist.items():
                hist[ms] += c
    s.p50_ms, s.p95_ms, s.p99_ms = (percentile(hist, q) for q in (0.5, 0.95, 0.99))
    s.rps = round((s.requests - s.failures) / s.seconds, 2) if s.seconds else 0.0
    mine = [x for x in samples if x.component == service and inside(x.t)]
    cpu = sorted(x.cpu_m for x in mine if x.cpu_m is not None)
    mem = [x.memory_mib for x in mine if x.memory_mib is not None]
    s.samples = len(mine)
    if cpu:
        s.cpu_mean_m = round(statistics.fmean(cpu), 1)
        s.cpu_p95_m = cpu[min(len(cpu) - 1, int(0.95 * len(cpu)))]
        if cpu_limit_m:
            s.cpu_at_limit_share = round(sum(c >= SATURATED * cpu_limit_m for c in cpu) / len(cpu), 3)
    s.memory_max_mib = max(mem) if mem else None
    return s


@dataclass
class PhaseVerdict:
    """One service in one judged phase."""

    phase: str
    stats: Stats
    failures: list[str] = field(default_factory=list)
    #: What was not judged, and why (a percentile with too few requests behind it).
    notes: list[str] = field(default_factory=list)


@dataclass
class Verdict:
    """One service over the whole run."""

    service: str
    cpu_request_m: int
    cpu_limit_m: int
    memory_request_mib: int
    memory_limit_mib: int
    objectives: Objectives
    phases: list[PhaseVerdict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return bool(self.phases) and not self.reasons

    @property
    def reasons(self) -> list[str]:
        return [f"{p.phase}: {r}" for p in self.phases for r in p.failures] or (
            [] if self.phases else ["no judged stage in this run"])

    def as_dict(self) -> dict:
        d = asdict(self)
        for p, pd in zip(self.phases, d["phases"], strict=True):
            pd["stats"]["error_ratio"] = round(p.stats.error_ratio, 4)
        return {**d, "passed": self.passed, "reasons": self.reasons}


def judge_phase(phase: str, stats: Stats, budget: Budget, objectives: Objectives, *, enforced: bool = True,
                tail: int = TAIL_REQUESTS) -> PhaseVerdict:
    """The failures of one phase, each with its reason; a percentile with fewer than ``tail`` requests above it
    is noted, not judged (``tail=0`` judges every one: the capacity steps, a conservative reading)."""
    v = PhaseVerdict(phase, stats)
    fail = v.failures.append
    if stats.requests == 0:
        fail("no requests completed")
    else:
        if stats.error_ratio > objectives.max_error_ratio:
            fail(f"error ratio {stats.error_ratio:.2%} above the objective {objectives.max_error_ratio:.2%} "
                 f"({stats.failures} of {stats.requests} requests failed)")
        for name, q, value, objective in (("p95", 0.95, stats.p95_ms, objectives.p95_ms),
                                          ("p99", 0.99, stats.p99_ms, objectives.p99_ms)):
            if value is None:
                continue
            if not judgeable(stats.requests, q, tail):
                v.notes.append(f"{name} latency not judged: {stats.requests} requests put fewer than "
                               f"{TAIL_REQUESTS} above it (measured {value:.0f} ms, objective {objective:.0f} ms)")
            elif value > objective:
                fail(f"{name} latency {value:.0f} ms above the objective {objective:.0f} ms")
    which = "request" if phase == "nominal" else "limit"
    cpu_budget = budget.cpu_m.request if phase == "nominal" else budget.cpu_m.limit
    mem_budget = budget.memory_mib.request if phase == "nominal" else budget.memory_mib.limit
    rule = f"{phase} load must stay within the {which}"
    if stats.samples == 0 or stats.cpu_mean_m is None or stats.memory_max_mib is None:
        fail("no resource samples: CPU and memory could not be judged")
        return v
    if stats.cpu_mean_m > cpu_budget:
        fail(f"CPU {stats.cpu_mean_m:.0f}m on average above its {which} of {cpu_budget}m ({rule})")
    elif enforced and (stats.cpu_at_limit_share or 0) >= PINNED_SHARE:
        fail(f"CPU pinned at its {budget.cpu_m.limit}m limit ({stats.cpu_at_limit_share:.0%} of samples): "
             "the quota throttles it, the load needs more")
    if stats.memory_max_mib > mem_budget:
        fail(f"memory {stats.memory_max_mib:.0f} MiB at its peak above its {which} of {mem_budget} MiB ({rule})")
    return v


def judge(service: str, windows: list[Window], buckets: list[Bucket], samples: list[Sample], budget: Budget,
          objectives: Objectives, *, enforced: bool = True, settle_s: float = 2.0) -> Verdict:
    """The verdict of ``service``: each judged phase (``nominal``, ``peak``) of the run."""
    verdict = Verdict(service, budget.cpu_m.request, budget.cpu_m.limit, budget.memory_mib.request,
                      budget.memory_mib.limit, objectives)
    for phase in ("nominal", "peak"):
        mine = [w for w in windows if w.phase == phase]
        if mine:
            stats = window_stats(service, mine, buckets, samples, settle_s=settle_s, cpu_limit_m=budget.cpu_m.limit)
            judged = judge_phase(phase, stats, budget, objectives, enforced=enforced)
            verdict.phases.append(judged)
            verdict.notes.extend(f"{phase}: {note}" for note in judged.notes)
    if not budget.cpu_m.documented or not budget.memory_mib.documented:
        verdict.notes.append("budget partly sandbox-assigned (the seed documents no figure)")
    return verdict
