"""Typed models of the Aether platform spec.

One :class:`PlatformSpec` describes every component of the seed document
(``system-requirements.md``) with its documented figures, plus the few
components the sandbox adds to run the platform locally (the Kraken venue
simulator, the workflow scheduler).  Compose files, local process plans,
load-test budgets and capacity totals all derive from it.

Units are explicit in every field name: CPU in millicores (``cpu_m``), memory
in MiB (``memory_mib``), storage in GiB (``size_gib``).

These models check the shape of each entry; checks that span components
(unknown dependencies, cycles, budgets) live in :mod:`sandbox.spec.checks` so
that each problem can be reported with its location.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, model_validator

Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9-]*[a-z0-9]$", max_length=63)]
DbName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=63)]
Port = Annotated[int, Field(ge=1, le=65535)]


class _Strict(BaseModel):
    """Base of every spec model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Kind(StrEnum):
    """What a component is, which decides how runtimes start and probe it."""

    DATABASE = "database"
    BROKER = "broker"
    CACHE = "cache"
    FEATURE_STORE = "feature-store"
    INGEST = "ingest"
    SERVICE = "service"
    SIMULATOR = "simulator"
    SCHEDULER = "scheduler"
    OBSERVABILITY = "observability"


class Origin(StrEnum):
    """Where a component comes from."""

    SEED = "seed"
    """Documented in the seed document; its figures are the seed's."""
    SANDBOX = "sandbox"
    """Added by the sandbox to run the platform locally; not part of the seed."""


class Resources(_Strict):
    """A CPU and memory amount; either may be absent when the seed is silent."""

    cpu_m: PositiveInt | None = None
    """CPU in millicores (1000 = one vCPU)."""
    memory_mib: PositiveInt | None = None
    """Memory in MiB (1024 = one GiB)."""

    def is_empty(self) -> bool:
        """True when neither figure is given."""
        return self.cpu_m is None and self.memory_mib is None


class Replicas(_Strict):
    """Replica counts per deployment overlay."""

    base: PositiveInt
    """Replicas in the base manifests."""
    production: PositiveInt | None = None
    """Replicas in the production overlay; the base count when not given."""

    def for_overlay(self, overlay: Overlay) -> int:
        """The replica count of ``overlay``."""
        if overlay is Overlay.PRODUCTION and self.production is not None:
            return self.production
        return self.base


class Overlay(StrEnum):
    """The seed's deployment overlays."""

    BASE = "base"
    PRODUCTION = "production"


class Volume(_Strict):
    """Storage a component keeps."""

    name: Name
    """Volume name, unique within the component."""
    size_gib: PositiveInt | None = None
    """Size in GiB; absent when the seed gives none."""
    persistent: bool = True
    """False for ephemeral (emptyDir-like) storage."""
    per_replica: bool = True
    """True when every replica has its own volume (StatefulSet claims)."""
    purpose: str
    """What is stored there."""
    append_only: bool = False
    """True for Redis append-only-file persistence."""


class Backup(_Strict):
    """A scheduled backup job writing to its own volume."""

    schedule: str
    """Cron expression of the job."""
    cadence: Literal["nightly", "intra-day", "daily", "weekly"]
    """The cadence the seed names."""
    volume_gib: PositiveInt
    """Size of the auxiliary backup volume in GiB."""


class Probe(_Strict):
    """A liveness or readiness probe."""

    kind: Literal["http", "exec", "tcp", "native"]
    """``http`` GETs ``path``; ``exec`` runs ``command`` inside the component;
    ``tcp`` connects to the port; ``native`` uses the server's own client check."""
    path: str | None = None
    """HTTP path, for ``http`` probes."""
    command: list[str] | None = None
    """Argument vector, for ``exec`` probes."""

    @model_validator(mode="after")
    def _fields_match_kind(self) -> Probe:
        if self.kind == "http" and not self.path:
            raise ValueError("an http probe needs a path")
        if self.kind == "exec" and not self.command:
            raise ValueError("an exec probe needs a command")
        return self


class ConfigRef(_Strict):
    """A documented configuration input: a secret, DSN variable or mount."""

    name: str
    """Its name as the seed gives it (secret name, variable or path)."""
    kind: Literal["secret", "env", "mount", "volume", "service"]
    """How it reaches the component."""
    carries: str
    """What it provides."""
    optional: bool = False
    """True when the seed calls it optional."""


class Images(_Strict):
    """Container images for the docker runtime; each overridable by users."""

    default: str
    """The image used where a registry is reachable (official or project image)."""
    offline: str | None = None
    """The image ``images build --offline`` builds on this machine; absent where
    nothing this machine can install provides the component."""


class Component(_Strict):
    """One deployable part of the platform."""

    name: Name
    """Kubernetes-style name, as in the seed (``auth-service``, ``kafka``)."""
    kind: Kind
    """What it is; decides how it is started and probed."""
    origin: Origin
    """Documented by the seed, or added by the sandbox."""
    description: str
    """One line: what it does in the platform."""
    source: str | None = None
    """The manifest the seed cites for its figures."""
    replicas: Replicas
    """Replica counts per overlay."""
    requests: Resources = Resources()
    """Documented resource requests (per replica)."""
    limits: Resources = Resources()
    """Documented resource limits (per replica)."""
    sandbox_budget: Resources = Resources()
    """Budget the sandbox assigns where the seed documents neither request nor
    limit for a dimension; shown to users as sandbox-assigned, never as documented."""
    storage: list[Volume] = []
    """Volumes it keeps."""
    backup: Backup | None = None
    """A scheduled backup job, where the seed documents one."""
    port: Port | None = None
    """The port it listens on inside its container or pod."""
    host_port: Port | None = None
    """The port the sandbox publishes on 127.0.0.1 (docker) or prefers (local)."""
    extra_ports: dict[Name, Port] = {}
    """Further named ports inside the container (e.g. ``ws`` for the venue's WebSocket feed)."""
    extra_host_ports: dict[Name, Port] = {}
    """Where the sandbox publishes or prefers each extra port on the host."""
    liveness: Probe | None = None
    """Liveness probe."""
    readiness: Probe | None = None
    """Readiness probe."""
    depends_on: list[Name] = []
    """Components that must be healthy before this one starts."""
    config: list[ConfigRef] = []
    """Documented configuration inputs."""
    env: dict[str, str] = {}
    """Environment the sandbox renders for it; ``{placeholders}`` are filled by the runtime."""
    databases: list[DbName] = []
    """PostgreSQL databases it owns, one per dataset."""
    images: Images | None = None
    """Container images, for components the docker runtime runs."""
    module: str | None = None
    """The Python module the sandbox runs for it (``python -m MODULE``), for its own components."""
    profiles: list[Name] = []
    """Named subsets it belongs to (``minimal``, ``full``, ``observability``)."""
    notes: str | None = None
    """Anything a user should know about how the sandbox treats it."""


class Workflow(_Strict):
    """A scheduled data workflow run by the workflow scheduler."""

    name: Name
    """Workflow name, used by ``aether-sandbox workflow run NAME``."""
    cadence: Literal["nightly", "intra-day", "daily", "weekly"]
    """The cadence the seed names (or the sandbox chooses, see ``origin``)."""
    schedule: str
    """Cron expression the scheduler uses."""
    origin: Origin
    """``seed`` when the seed documents the workflow."""
    description: str
    """What it does."""
    source: str | None = None
    """The workflow definition the seed cites."""
    depends_on: list[Name] = []
    """Components it reads from or writes to."""
    notes: str | None = None
    """What the sandbox chose where the seed is silent."""


class BudgetRule(_Strict):
    """One line of the budget policy."""

    when: str
    """Which figures the seed documents for a resource dimension."""
    enforced: str
    """What the runtimes enforce (cgroup quota, container limit)."""
    verdict: str
    """What load verdicts compare against."""


class BudgetPolicy(_Strict):
    """How the sandbox turns documented figures into enforced budgets."""

    summary: str
    """The policy in one paragraph, shown to users."""
    nominal_within: Literal["request"]
    """Nominal load must stay within this figure."""
    peak_within: Literal["limit"]
    """Peak load must stay within this figure."""
    rules: list[BudgetRule]
    """Per resource dimension, by which figures are documented."""


class PlatformSpec(_Strict):
    """The whole platform: the single source of truth for every figure."""

    version: Literal[1]
    """Format version of this file."""
    platform: str
    """Platform name."""
    source: str
    """The document the figures come from."""
    budget_policy: BudgetPolicy
    """How budgets are derived and judged."""
    components: list[Component]
    """Every deployable part."""
    workflows: list[Workflow] = []
    """Scheduled data workflows."""

    def component(self, name: str) -> Component:
        """The component called ``name``; raises ``KeyError`` when there is none."""
        for component in self.components:
            if component.name == name:
                return component
        raise KeyError(name)

    def names(self) -> list[str]:
        """Component names in file order."""
        return [c.name for c in self.components]
