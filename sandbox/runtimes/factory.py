"""Choosing a runtime: ``--runtime auto|local|docker``."""

from __future__ import annotations

import os
from enum import StrEnum

from sandbox.runtimes.base import EngineUnavailable, Runtime
from sandbox.runtimes.local.state import StateDir, read_json
from sandbox.spec.models import PlatformSpec


class RuntimeChoice(StrEnum):
    """What the user asked for."""

    AUTO = "auto"
    LOCAL = "local"
    DOCKER = "docker"


def _image_sets(spec: PlatformSpec) -> tuple[bool, bool, str]:
    """(official set complete, offline set complete, a one-line account) for the components outside observability."""
    from sandbox.runtimes import engine
    from sandbox.runtimes.docker.images import missing, resolve_images

    tags = engine.image_tags(timeout=5.0)
    core = {c.name for c in spec.components if c.images and "observability" not in c.profiles and c.kind.value != "feature-store"}
    complete = []
    for offline in (False, True):
        choices = resolve_images(spec, offline=offline)
        absent = missing({n: choices[n] for n in core if n in choices}, tags)
        complete.append(not absent and all(n in choices for n in core))
    official, offline = complete
    account = "official images present" if official else "offline images present" if offline else "neither image set is complete"
    return official, offline, account


def _docker(spec: PlatformSpec, state: StateDir, spec_ports: bool, offline: bool) -> Runtime:
    from sandbox.runtimes.docker.runtime import DockerRuntime

    return DockerRuntime(spec, state, offline=offline, spec_ports=spec_ports)


def _recorded_offline(state: StateDir) -> bool | None:
    """The image set of the sandbox's latest docker ``up``, or ``None`` when it never ran on docker."""
    record = read_json(state.root / "docker" / "sandbox.json")
    return bool(record.get("offline")) if isinstance(record, dict) else None


def choose(spec: PlatformSpec, choice: RuntimeChoice, sandbox: str) -> tuple[Runtime, str]:
    """The runtime to use and why it was chosen."""
    from sandbox.runtimes.local.runtime import LocalRuntime

    state = StateDir.for_name(sandbox)
    # Tests and parallel sandboxes ask for kernel-assigned ports instead of the spec's host ports.
    spec_ports = os.environ.get("AETHER_SANDBOX_PORTS", "spec") != "dynamic"
    local = LocalRuntime(spec, state, spec_ports=spec_ports)
    if choice is RuntimeChoice.LOCAL:
        return local, "asked for with --runtime local"
    from sandbox.doctor.checks import Status, check_engine

    engine = check_engine()
    recorded = _recorded_offline(state)
    if choice is RuntimeChoice.DOCKER:
        if engine.status is not Status.OK:
            raise EngineUnavailable(f"no Docker engine answers ({engine.detail})", hint="start dockerd, or use --runtime local")
        official, offline, account = _image_sets(spec)
        if recorded is not None and not official and not offline:
            use_offline = recorded
        else:
            # Without a complete official set, the offline set (the one this machine can build) is the way forward.
            use_offline = not official
        which = "offline" if use_offline else "official"
        return _docker(spec, state, spec_ports, use_offline), f"docker ({which} images; {account}), asked for with --runtime docker"
    if local.supervisor_pid():
        return local, "local: this sandbox is up with the local runtime"
    if engine.status is not Status.OK:
        return local, f"local: no Docker engine answers ({engine.detail})"
    if recorded is not None:
        return _docker(spec, state, spec_ports, recorded), "docker: this sandbox was brought up with the docker runtime"
    official, offline, account = _image_sets(spec)
    if official or offline:
        which = "official" if official else "offline"
        return _docker(spec, state, spec_ports, not official), f"docker: an engine answers and the {which} images are present"
    return local, f"local: a Docker engine answers but no complete image set is present ({account}; `aether-sandbox images build --offline` builds one)"
