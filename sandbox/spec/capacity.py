"""What a cluster must provide to run the platform: the seed's stated purpose.

Per component and in total, for one overlay: CPU and memory requests and
limits times replicas, and persistent storage.  Figures the seed does not
document are flagged and left out of the totals (never counted as zero);
components the sandbox adds (the venue simulator, the scheduler) are not part
of the platform a cluster runs and are listed apart.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from sandbox.spec.models import Component, Origin, Overlay, PlatformSpec

DIMENSIONS = ("cpu_m", "memory_mib")


@dataclass
class Figures:
    """A CPU/memory pair; ``None`` where the seed gives no figure."""

    cpu_m: int | None = None
    memory_mib: int | None = None


@dataclass
class ComponentCapacity:
    """One component's footprint in an overlay."""

    name: str
    kind: str
    replicas: int
    requests: Figures
    """Requests times replicas."""
    limits: Figures
    """Limits times replicas."""
    storage_gib: int
    """Persistent storage times replicas, plus backup volumes."""
    flags: list[str] = field(default_factory=list)
    """What the seed leaves undocumented, or what was derived."""


@dataclass
class CapacityReport:
    """The footprint of the whole platform in one overlay."""

    overlay: str
    components: list[ComponentCapacity]
    totals: dict[str, Figures | int]
    by_kind: dict[str, dict[str, Figures]]
    undocumented: dict[str, list[str]]
    """Per figure (``requests.cpu_m`` …), the components that leave it undocumented."""
    sandbox_only: list[str]
    """Components the sandbox adds, not counted."""

    def to_dict(self) -> dict:
        """A JSON-ready dictionary."""
        return asdict(self)


def _times(value: int | None, replicas: int) -> int | None:
    return None if value is None else value * replicas


def component_capacity(component: Component, overlay: Overlay) -> ComponentCapacity:
    """The footprint of ``component`` in ``overlay``, with flags for what is missing."""
    n = component.replicas.for_overlay(overlay)
    flags: list[str] = []
    requests, limits = Figures(), Figures()
    for dim in DIMENSIONS:
        request, limit = getattr(component.requests, dim), getattr(component.limits, dim)
        if request is None and limit is not None:
            # Kubernetes sets a container's request to its limit when only the limit is given.
            request = limit
            flags.append(f"{dim} request taken from its limit (Kubernetes default)")
        elif request is None:
            flags.append(f"no documented {dim} request")
        if limit is None:
            flags.append(f"no documented {dim} limit")
        setattr(requests, dim, _times(request, n))
        setattr(limits, dim, _times(limit, n))
    storage = 0
    for volume in component.storage:
        if not volume.persistent:
            continue
        if volume.size_gib is None:
            flags.append(f"volume '{volume.name}' has no documented size")
            continue
        storage += volume.size_gib * (n if volume.per_replica else 1)
    if component.backup:
        storage += component.backup.volume_gib
    return ComponentCapacity(component.name, component.kind.value, n, requests, limits, storage, flags)


def _sum(items: list[ComponentCapacity], attr: str) -> Figures:
    out = Figures()
    for dim in DIMENSIONS:
        values = [v for c in items if (v := getattr(getattr(c, attr), dim)) is not None]
        setattr(out, dim, sum(values) if values else None)
    return out


def capacity(spec: PlatformSpec, overlay: Overlay = Overlay.BASE) -> CapacityReport:
    """The capacity report of ``spec`` in ``overlay``."""
    platform = [c for c in spec.components if c.origin is Origin.SEED]
    rows = [component_capacity(c, overlay) for c in platform]
    undocumented: dict[str, list[str]] = {}
    for attr in ("requests", "limits"):
        for dim in DIMENSIONS:
            missing = [r.name for r in rows if getattr(getattr(r, attr), dim) is None]
            if missing:
                undocumented[f"{attr}.{dim}"] = missing
    kinds = sorted({r.kind for r in rows}, key=[r.kind for r in rows].index)
    by_kind = {
        kind: {
            "requests": _sum([r for r in rows if r.kind == kind], "requests"),
            "limits": _sum([r for r in rows if r.kind == kind], "limits"),
        }
        for kind in kinds
    }
    totals: dict[str, Figures | int] = {
        "requests": _sum(rows, "requests"),
        "limits": _sum(rows, "limits"),
        "storage_gib": sum(r.storage_gib for r in rows),
        "replicas": sum(r.replicas for r in rows),
    }
    sandbox_only = [c.name for c in spec.components if c.origin is Origin.SANDBOX]
    return CapacityReport(overlay.value, rows, totals, by_kind, undocumented, sandbox_only)
