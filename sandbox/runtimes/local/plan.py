"""The local process plan, derived from the platform spec.

For every selected component: how it is launched (an embedded server or a
Python module), whether it exists on this machine yet (and why not), its
loopback ports, its budget and the environment template the supervisor renders
once the infrastructure it points at is up.
"""

from __future__ import annotations

import importlib.util
from dataclasses import asdict, dataclass, field

from sandbox.errors import InvalidInput
from sandbox.infra.ports import free_port, port_in_use
from sandbox.spec.budget import budget_of
from sandbox.spec.graph import closure, start_order
from sandbox.spec.models import Component, Kind, PlatformSpec

PROFILES = ("minimal", "full", "observability")

#: Embedded servers standing in for the infrastructure components.
EMBEDDED = {"timescaledb": "postgres", "kafka": "kafka", "nats": "nats", "redis": "redis"}


@dataclass
class ComponentPlan:
    """How the supervisor runs one component."""

    name: str
    kind: str
    launcher: str
    """``postgres``, ``redis``, ``nats``, ``kafka``, ``python``, ``feast`` or ``none``."""
    available: bool
    why_unavailable: str = ""
    module: str | None = None
    port: int | None = None
    extra_ports: dict[str, int] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    """Environment templates from the spec; rendered by the supervisor."""
    databases: list[str] = field(default_factory=list)
    cpu_request_m: int = 0
    cpu_limit_m: int = 0
    memory_request_mib: int = 0
    memory_limit_mib: int = 0
    health: str = "http"
    """``http`` (GET ``health_path``), or ``native`` (the embedded server's own check)."""
    health_path: str = "/healthz"
    """The path of the spec's HTTP readiness probe."""


@dataclass
class Plan:
    """Every component the supervisor runs, in start order."""

    sandbox: str
    components: list[ComponentPlan]

    def to_dict(self) -> dict:
        """JSON-ready."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Plan:
        """Inverse of :meth:`to_dict`."""
        return cls(data["sandbox"], [ComponentPlan(**c) for c in data["components"]])

    def get(self, name: str) -> ComponentPlan:
        """The plan of component ``name``."""
        for c in self.components:
            if c.name == name:
                return c
        raise KeyError(name)


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module + ".__main__") is not None
    except ModuleNotFoundError:
        return False


def _launcher(component: Component) -> tuple[str, bool, str]:
    """(launcher, available, why not) for ``component`` on this machine."""
    if component.name in EMBEDDED:
        from sandbox.infra.binaries import locate

        binary = {"postgres": "postgres", "kafka": "tansu", "nats": "nats-server", "redis": "redis-server"}[
            EMBEDDED[component.name]
        ]
        status = locate(binary)
        return EMBEDDED[component.name], status.found, "" if status.found else f"{binary} not installed ({status.install_hint})"
    if component.kind is Kind.OBSERVABILITY:
        from sandbox.runtimes.local.observability import binary_for, unavailable_reason

        if binary_for(component.name):
            return "binary", True, ""
        return "none", False, unavailable_reason(component.name)
    if component.module and _module_exists(component.module):
        return "python", True, ""
    return "python", False, f"{component.module or component.name} is not built yet"


def select(spec: PlatformSpec, names: list[str], profile: str | None) -> list[str]:
    """The components to run: ``names`` or a profile (default ``full``), with their dependencies."""
    known = set(spec.names())
    if unknown := [n for n in names if n not in known]:
        raise InvalidInput(
            f"unknown component: {', '.join(unknown)}",
            hint="`aether-sandbox spec` lists every component",
        )
    if profile and profile not in PROFILES:
        raise InvalidInput(f"unknown profile '{profile}'", hint=f"profiles: {', '.join(PROFILES)}")
    # The observability profile adds the observability stack to the full platform it watches.
    chosen = {"full", "observability"} if profile == "observability" else {profile or "full"}
    roots = names or [c.name for c in spec.components if chosen & set(c.profiles)]
    edges = {c.name: c.depends_on for c in spec.components}
    wanted = closure(edges, roots)
    return start_order(edges, wanted)


def make_plan(
    spec: PlatformSpec, sandbox: str, names: list[str], profile: str | None, *, spec_ports: bool = True
) -> Plan:
    """The process plan for the selection.

    Ports are the spec's host ports where free (``spec_ports``), else free ports
    the kernel hands out; either way no two components share one.
    """
    taken: set[int] = set()

    def pick(preferred: int | None) -> int:
        if spec_ports and preferred and preferred not in taken and not port_in_use(preferred):
            taken.add(preferred)
            return preferred
        while (port := free_port()) in taken:
            pass
        taken.add(port)
        return port

    plans = []
    for name in select(spec, names, profile):
        c = spec.component(name)
        launcher, available, why = _launcher(c)
        budget = budget_of(c)
        plan = ComponentPlan(
            name=name,
            kind=c.kind.value,
            launcher=launcher,
            available=available,
            why_unavailable=why,
            module=c.module,
            depends_on=list(c.depends_on),
            env=dict(c.env),
            databases=list(c.databases),
            cpu_request_m=budget.cpu_m.request,
            cpu_limit_m=budget.cpu_m.limit,
            memory_request_mib=budget.memory_mib.request,
            memory_limit_mib=budget.memory_mib.limit,
            health="native" if name in EMBEDDED else "http",
            health_path=c.readiness.path if c.readiness and c.readiness.kind == "http" and c.readiness.path else "/healthz",
        )
        if available:
            plan.port = pick(c.host_port)
            if launcher == "nats":
                plan.extra_ports["monitor"] = pick(None)
            if launcher == "binary" and name == "prometheus":
                plan.extra_ports["exporter"] = pick(None)  # the sandbox exporter (sandbox.observability.exporter)
            for extra in c.extra_ports:
                plan.extra_ports[extra] = pick(c.extra_host_ports.get(extra))
        plans.append(plan)
    return Plan(sandbox, plans)
