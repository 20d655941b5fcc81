"""Checks that span components, each problem with its location in the file.

Pydantic checks the shape of every entry; these checks find what no single
entry can show: unknown or cyclic dependencies, budgets that cannot be
derived, requests above limits, clashing names and ports, placeholders that
point nowhere.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from sandbox.spec.budget import BudgetUndefined, budget_of
from sandbox.spec.graph import find_cycle
from sandbox.spec.models import PlatformSpec

Loc = tuple[str | int, ...]

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([A-Za-z0-9_.-]+))?\}")
_PLAIN_PLACEHOLDERS = {"redis_url", "nats_url", "kafka_bootstrap", "kraken_credentials_dir", "cache_dir"}
_COMPONENT_PLACEHOLDERS = {"url", "url_if_up", "ws_url"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec, at a location such as ``("components", 3, "depends_on", 0)``."""

    loc: Loc
    message: str


def check_platform(spec: PlatformSpec) -> list[Problem]:
    """Every cross-component problem of ``spec``; empty when it is sound."""
    return [
        *_duplicates(spec),
        *_dependencies(spec),
        *_figures(spec),
        *_placeholders(spec),
    ]


def _duplicates(spec: PlatformSpec) -> list[Problem]:
    problems = []
    seen_names = Counter(c.name for c in spec.components)
    seen_ports = Counter(
        port for c in spec.components for port in (c.host_port, *c.extra_host_ports.values()) if port
    )
    for i, c in enumerate(spec.components):
        if seen_names[c.name] > 1:
            problems.append(Problem(("components", i, "name"), f"component name '{c.name}' is used more than once"))
        if c.host_port and seen_ports[c.host_port] > 1:
            problems.append(Problem(("components", i, "host_port"), f"host port {c.host_port} is used by another component"))
        for name, port in c.extra_host_ports.items():
            if seen_ports[port] > 1:
                problems.append(Problem(("components", i, "extra_host_ports", name), f"host port {port} is used more than once"))
            if name not in c.extra_ports:
                problems.append(Problem(("components", i, "extra_host_ports", name), f"no extra port '{name}' to publish"))
        for name, count in Counter(v.name for v in c.storage).items():
            if count > 1:
                problems.append(Problem(("components", i, "storage"), f"volume name '{name}' is used more than once"))
    for name, count in Counter(w.name for w in spec.workflows).items():
        if count > 1:
            problems.append(Problem(("workflows",), f"workflow name '{name}' is used more than once"))
    return problems


def _dependencies(spec: PlatformSpec) -> list[Problem]:
    known = set(spec.names())
    problems = []
    for i, c in enumerate(spec.components):
        for j, dep in enumerate(c.depends_on):
            if dep == c.name:
                problems.append(Problem(("components", i, "depends_on", j), f"'{c.name}' depends on itself"))
            elif dep not in known:
                problems.append(Problem(("components", i, "depends_on", j), f"unknown component '{dep}'"))
    for i, w in enumerate(spec.workflows):
        for j, dep in enumerate(w.depends_on):
            if dep not in known:
                problems.append(Problem(("workflows", i, "depends_on", j), f"unknown component '{dep}'"))
    edges = {c.name: [d for d in c.depends_on if d != c.name] for c in spec.components}
    if cycle := find_cycle(edges):
        i = spec.names().index(cycle[0])
        problems.append(Problem(("components", i, "depends_on"), "dependency cycle: " + " -> ".join(cycle)))
    return problems


def _figures(spec: PlatformSpec) -> list[Problem]:
    problems = []
    for i, c in enumerate(spec.components):
        for dim in ("cpu_m", "memory_mib"):
            request, limit = getattr(c.requests, dim), getattr(c.limits, dim)
            if request is not None and limit is not None and request > limit:
                problems.append(Problem(("components", i, "requests", dim), f"request {request} exceeds limit {limit}"))
            if getattr(c.sandbox_budget, dim) is not None and (request is not None or limit is not None):
                problems.append(
                    Problem(
                        ("components", i, "sandbox_budget", dim),
                        "a sandbox budget is only for dimensions the seed leaves undocumented",
                    )
                )
        try:
            budget_of(c)
        except BudgetUndefined as exc:
            problems.append(Problem(("components", i), str(exc)))
    return problems


def _placeholders(spec: PlatformSpec) -> list[Problem]:
    known = set(spec.names())
    problems = []
    for i, c in enumerate(spec.components):
        for var, value in c.env.items():
            for kind, arg in _PLACEHOLDER.findall(value):
                loc: Loc = ("components", i, "env", var)
                if kind in _PLAIN_PLACEHOLDERS and not arg:
                    continue
                if kind == "postgres" and arg in c.databases:
                    continue
                if kind == "postgres":
                    problems.append(Problem(loc, f"database '{arg}' is not in this component's databases"))
                elif kind in _COMPONENT_PLACEHOLDERS and arg in known:
                    continue
                elif kind in _COMPONENT_PLACEHOLDERS:
                    problems.append(Problem(loc, f"unknown component '{arg}'"))
                elif kind == "secret" and arg:
                    continue
                else:
                    problems.append(Problem(loc, f"unknown placeholder '{{{kind}{':' + arg if arg else ''}}}'"))
    return problems
