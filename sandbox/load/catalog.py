"""The one place load profiles, request mixes and objectives are declared.

A **profile** is a list of stages (``LoadTestShape`` plays them in order):
each stage lasts ``seconds``, runs ``users`` locust users *per service*, each
user pacing itself to ``rps_per_user`` requests per second, and is judged as
``nominal`` (CPU and memory within the request), ``peak`` (within the limit)
or ``ramp`` (not judged: the service is warming up or the load is changing).

A **service plan** names the user class of ``loadtests/locustfile.py`` that
exercises a component, the weight of each of its tasks (the request mix), and
the objectives its requests are judged by (p95, p99, error ratio).  The budget
side of a verdict comes from the platform spec (:func:`sandbox.spec.budget.budget_of`),
never from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Phase = Literal["ramp", "nominal", "peak"]


@dataclass(frozen=True)
class Stage:
    """One stage of a profile."""

    seconds: float
    """How long the stage lasts."""
    users: int
    """Locust users per service during the stage."""
    phase: Phase
    """How the stage is judged: ``nominal`` within requests, ``peak`` within limits, ``ramp`` not judged."""


@dataclass(frozen=True)
class Profile:
    """A named load profile: stages played in order, then the run stops by itself."""

    name: str
    description: str
    stages: tuple[Stage, ...]
    rps_per_user: float
    """Each user's pace (locust ``constant_throughput``)."""

    @property
    def seconds(self) -> float:
        """Total length of the profile."""
        return sum(s.seconds for s in self.stages)

    def scaled(self, *, users: int | None = None, seconds: float | None = None) -> Profile:
        """The profile with every stage's users set to ``users`` and its total stretched to ``seconds``."""
        factor = (seconds / self.seconds) if seconds else 1.0
        stages = tuple(
            Stage(round(s.seconds * factor, 2), users if users is not None and s.users else s.users, s.phase)
            for s in self.stages
        )
        return Profile(self.name, self.description, stages, self.rps_per_user)


@dataclass(frozen=True)
class Objectives:
    """What a service's requests must achieve within a judged stage."""

    p95_ms: float
    p99_ms: float
    max_error_ratio: float


@dataclass(frozen=True)
class ServicePlan:
    """How one component is loaded and judged."""

    component: str
    """Spec component name."""
    user_class: str
    """The user class in ``loadtests/locustfile.py``."""
    mix: dict[str, int]
    """Task name -> weight: the request mix."""
    objectives: Objectives
    check_endpoint: bool = False
    """A check endpoint the issue compares with a bare FastAPI endpoint (same CPU quota)."""
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    """Service-specific knobs (e.g. the ingest's replay pace)."""


CHECKS = Objectives(p95_ms=50, p99_ms=100, max_error_ratio=0.01)
"""Objectives of read and check endpoints (token checks, lookups, pre-trade checks)."""

WRITES = Objectives(p95_ms=100, p99_ms=200, max_error_ratio=0.01)
"""Objectives of endpoints that write to PostgreSQL or call other services."""


SERVICES: tuple[ServicePlan, ...] = (
    ServicePlan("auth-service", "AuthUser", {"introspect": 6, "me": 3, "jwks": 2, "refresh": 1}, WRITES,
                check_endpoint=True, notes="each user logs in once (argon2id, costly by design), then uses and refreshes its tokens"),
    ServicePlan("config-service", "ConfigUser", {"read_key": 6, "list_namespace": 2, "namespaces": 1, "write_key": 1},
                CHECKS, check_endpoint=True),
    ServicePlan("capital-allocator", "CapitalUser",
                {"capital": 4, "current": 2, "reserve_release": 2, "portfolio": 1}, WRITES),
    ServicePlan("policy-service", "PolicyUser", {"check_order": 8, "rules": 1, "reference": 1}, CHECKS,
                check_endpoint=True),
    ServicePlan("risk-service", "RiskUser", {"check_order": 8, "positions": 1, "kill_switch": 1}, CHECKS,
                check_endpoint=True),
    ServicePlan("fees-service", "FeesUser", {"estimate": 8, "schedule": 2}, CHECKS, check_endpoint=True),
    ServicePlan("secrets-service", "SecretsUser", {"list_keys": 5, "permissions": 3, "get_key": 2}, CHECKS),
    ServicePlan("universe-service", "UniverseUser", {"instrument": 6, "list_usd": 1, "instrument_fees": 2}, CHECKS,
                check_endpoint=True),
    ServicePlan("oms-service", "OmsUser", {"place_and_cancel": 4, "marketable": 2, "get_order": 2, "positions": 1},
                Objectives(p95_ms=60, p99_ms=100, max_error_ratio=0.01),
                notes="every order goes through policy, risk, fees, capital-allocator and the venue"),
    ServicePlan("strategy-orchestrator", "StrategyUser", {"get": 4, "list": 2, "transitions": 1, "pause_resume": 2},
                WRITES),
    ServicePlan("kraken-ws-ingest", "IngestUser", {"stats": 1}, Objectives(p95_ms=100, p99_ms=250, max_error_ratio=0.01),
                notes="driven by a venue replay at a chosen pace; its HTTP reads are light",
                extra={"replay_speed": 2.0}),
)
"""Every component a load run covers, in run order."""

REPLAY_SESSION = "v2-book10-majors"
"""The shipped session the ingest is driven with (looped at ``replay_speed`` times real time)."""


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("smoke", "every service, one user each, briefly: does everything answer within budget",
                (Stage(5, 1, "ramp"), Stage(20, 1, "nominal")), rps_per_user=4),
        Profile("nominal", "the load a replica is sized for: judged against requests",
                (Stage(15, 2, "ramp"), Stage(120, 2, "nominal")), rps_per_user=5),
        Profile("peak", "nominal, then a burst: nominal judged against requests, the burst against limits",
                (Stage(15, 2, "ramp"), Stage(60, 2, "nominal"), Stage(10, 6, "ramp"), Stage(90, 6, "peak")),
                rps_per_user=5),
        Profile("soak", "nominal load held for ten minutes: leaks show as memory growth",
                (Stage(15, 2, "ramp"), Stage(600, 2, "nominal")), rps_per_user=5),
        Profile("step", "rising load until an objective breaks: the capacity search",
                tuple(Stage(20, users, "peak") for users in (1, 2, 4, 8, 16, 32, 64)), rps_per_user=10),
    )
}
"""Profiles by name.  Every one is bounded: the run stops by itself after ``Profile.seconds``."""


def service(component: str) -> ServicePlan:
    """The plan of ``component``; ``KeyError`` for a component no load plan covers."""
    for plan in SERVICES:
        if plan.component == component:
            return plan
    raise KeyError(component)
