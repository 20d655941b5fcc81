"""Faults on demand, scripted per scenario.

A scenario posts fault rules (``POST /admin/faults``); each rule is one of:

``error``
    Answer matching private calls with Kraken errors (``errors``, default
    ``["EService:Unavailable"]``).  ``phase: before`` (default): the call is
    not executed; ``phase: after``: it is executed and the error returned
    anyway (Kraken does this under load: the order went through).
``latency``
    Delay matching calls by ``latency_ms`` plus a seeded uniform jitter of up
    to ``jitter_ms``, before executing them (``phase: before``, the default, so
    a delayed AddOrder meets the market as it is when it arrives) or before
    answering (``phase: after``).
``drop`` / ``drop_after_accept``
    Lose the response: ``drop`` before the call is executed, ``drop_after_accept``
    after it (the order is live and fills; the client must reconcile).  ``mode``:
    ``reset`` (close the connection with no response, the default), ``hang``
    (hold the request ``hold_s`` seconds, then close it) or ``http`` (answer
    ``http_status``, 520 by default, with an HTML body, as Kraken's CDN does).
``ws_disconnect``
    Drop WebSocket connections ``delay_s`` after the rule is posted: with
    ``scope: executions`` (default) the executions connections (of
    ``api_key``'s account, or all); with ``market`` or ``all`` also the
    market-data connections, through the hooks the venue process registers in
    ``TradingVenue.market_disconnect_hooks``.
``status``
    Set the venue's status (``online``, ``maintenance``, ``cancel_only``,
    ``post_only``) or with ``pair`` one pair's status, ``delay_s`` after the rule
    is posted, and restore the previous status after ``duration_s`` if given.

Request rules match on ``endpoint`` (a method name such as ``AddOrder``, a list
of them, or ``*``) and optionally ``api_key``; ``skip`` lets the first N
matching calls through, ``count`` limits how often the rule fires, and
``probability`` fires it at random from the venue's seeded generator (or the
rule's own, with ``seed``), so a scenario run twice with the same seed fails the
same calls.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sandbox.venue.trading.errors import UNAVAILABLE

REQUEST_ACTIONS = ("error", "latency", "drop", "drop_after_accept")
TIMED_ACTIONS = ("ws_disconnect", "status")
STATUS_VALUES = ("online", "maintenance", "cancel_only", "post_only", "limit_only", "reduce_only")


class FaultSpec(BaseModel):
    """One fault rule as a scenario writes it."""

    model_config = ConfigDict(extra="forbid")

    action: Literal["error", "latency", "drop", "drop_after_accept", "ws_disconnect", "status"]
    endpoint: str | list[str] = "*"
    api_key: str | None = None
    errors: list[str] = Field(default_factory=lambda: [UNAVAILABLE])
    phase: Literal["before", "after"] | None = None
    latency_ms: float = Field(0, ge=0, le=600_000)
    jitter_ms: float = Field(0, ge=0, le=600_000)
    mode: Literal["reset", "hang", "http"] = "reset"
    hold_s: float = Field(30, ge=0, le=3600)
    http_status: int = Field(520, ge=400, le=599)
    probability: float = Field(1.0, ge=0, le=1)
    skip: int = Field(0, ge=0)
    count: int | None = Field(None, ge=1)
    delay_s: float = Field(0, ge=0, le=86_400)
    status: str | None = None
    pair: str | None = None
    duration_s: float | None = Field(None, gt=0, le=86_400)
    scope: Literal["executions", "market", "all"] = "executions"
    name: str = ""
    #: a generator of the rule's own for ``probability`` and ``jitter_ms`` (None: the venue's, shared
    #: by every rule), so a scenario's random faults do not depend on what runs beside it
    seed: int | None = None

    @field_validator("errors")
    @classmethod
    def _kraken_errors(cls, value: list[str]) -> list[str]:
        if not value or any(not e or e[0] not in "EW" or ":" not in e for e in value):
            raise ValueError("errors must be Kraken error strings such as 'EService:Unavailable'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FaultSpec:
        if self.action == "status":
            if self.status not in STATUS_VALUES:
                raise ValueError(f"status must be one of {', '.join(STATUS_VALUES)}")
            if self.pair is None and self.status not in ("online", "maintenance", "cancel_only", "post_only"):
                raise ValueError("the venue-wide status is online, maintenance, cancel_only or post_only")
        if self.action == "drop_after_accept":
            self.phase = "after"
        if self.phase is None:
            self.phase = "before"
        return self


@dataclass
class FaultRule:
    """A posted rule and what it has done so far."""

    id: str
    spec: FaultSpec
    posted_at: float
    seen: int = 0
    fired: int = 0
    #: timed rules: done once applied (and restored, for a status with a duration)
    applied: bool = False
    restored: bool = False
    previous_status: str | None = None
    rng: random.Random | None = None

    @property
    def exhausted(self) -> bool:
        return self.spec.count is not None and self.fired >= self.spec.count

    def matches(self, method: str, api_key: str | None) -> bool:
        """True when this request rule applies to a call of ``method`` with ``api_key``."""
        spec = self.spec
        if spec.action not in REQUEST_ACTIONS or self.exhausted:
            return False
        endpoints = [spec.endpoint] if isinstance(spec.endpoint, str) else spec.endpoint
        if "*" not in endpoints and method not in endpoints:
            return False
        return spec.api_key is None or spec.api_key == api_key

    def as_dict(self) -> dict[str, Any]:
        """The rule with its counters, for ``GET /admin/faults``."""
        return {"id": self.id, **self.spec.model_dump(exclude_defaults=False), "seen": self.seen,
                "fired": self.fired, "applied": self.applied, "restored": self.restored}


@dataclass
class RequestFaults:
    """What the faults decided for one call."""

    latency_before_s: float = 0.0
    latency_after_s: float = 0.0
    errors_before: list[str] | None = None
    errors_after: list[str] | None = None
    drop_before: FaultSpec | None = None
    drop_after: FaultSpec | None = None
    rule_ids: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.rule_ids)


class FaultPlan:
    """The rules in force, drawn against a generator seeded with the venue's seed."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(f"aether-venue-faults:{seed}")
        self.rules: dict[str, FaultRule] = {}
        self._ids = itertools.count(1)

    def add(self, spec: FaultSpec, now: float) -> FaultRule:
        """Post a rule; returns it with its id (``f1``, ``f2``...)."""
        rule = FaultRule(id=f"f{next(self._ids)}", spec=spec, posted_at=now,
                         rng=random.Random(f"aether-fault-rule:{spec.seed}") if spec.seed is not None else None)
        self.rules[rule.id] = rule
        return rule

    def remove(self, rule_id: str | None = None) -> int:
        """Remove one rule (or all); returns how many were removed."""
        if rule_id is None:
            count = len(self.rules)
            self.rules.clear()
            return count
        return 1 if self.rules.pop(rule_id, None) is not None else 0

    def for_request(self, method: str, api_key: str | None) -> RequestFaults:
        """Draw every request rule against one call of ``method``; counts what fired."""
        out = RequestFaults()
        for rule in self.rules.values():
            if not rule.matches(method, api_key):
                continue
            rule.seen += 1
            spec = rule.spec
            if rule.seen <= spec.skip:
                continue
            rng = rule.rng or self.rng
            if spec.probability < 1.0 and rng.random() >= spec.probability:
                continue
            rule.fired += 1
            out.rule_ids.append(rule.id)
            if spec.action == "latency":
                delay = (spec.latency_ms + (rng.uniform(0, spec.jitter_ms) if spec.jitter_ms else 0.0)) / 1000
                if spec.phase == "after":
                    out.latency_after_s += delay
                else:
                    out.latency_before_s += delay
            elif spec.action == "error":
                if spec.phase == "after":
                    out.errors_after = out.errors_after or list(spec.errors)
                else:
                    out.errors_before = out.errors_before or list(spec.errors)
            elif spec.phase == "after":
                out.drop_after = out.drop_after or spec
            else:
                out.drop_before = out.drop_before or spec
        return out

    def due(self, now: float) -> list[tuple[str, FaultRule]]:
        """Timed rules to apply (``"apply"``) or undo (``"restore"``) now."""
        work: list[tuple[str, FaultRule]] = []
        for rule in self.rules.values():
            spec = rule.spec
            if spec.action not in TIMED_ACTIONS:
                continue
            start = rule.posted_at + spec.delay_s
            if not rule.applied and now >= start:
                work.append(("apply", rule))
            elif (rule.applied and not rule.restored and spec.duration_s is not None
                  and now >= start + spec.duration_s):
                work.append(("restore", rule))
        return work

    def listing(self) -> list[dict[str, Any]]:
        """Every rule with its counters."""
        return [rule.as_dict() for rule in self.rules.values()]
