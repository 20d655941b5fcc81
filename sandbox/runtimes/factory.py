"""Choosing a runtime: ``--runtime auto|local|docker``."""

from __future__ import annotations

from enum import StrEnum

from sandbox.runtimes.base import EngineUnavailable, Runtime
from sandbox.runtimes.local.state import StateDir
from sandbox.spec.models import PlatformSpec


class RuntimeChoice(StrEnum):
    """What the user asked for."""

    AUTO = "auto"
    LOCAL = "local"
    DOCKER = "docker"


def choose(spec: PlatformSpec, choice: RuntimeChoice, sandbox: str) -> tuple[Runtime, str]:
    """The runtime to use and why it was chosen."""
    from sandbox.runtimes.local.runtime import LocalRuntime

    import os

    state = StateDir.for_name(sandbox)
    # Tests and parallel sandboxes ask for kernel-assigned ports instead of the spec's host ports.
    spec_ports = os.environ.get("AETHER_SANDBOX_PORTS", "spec") != "dynamic"
    if choice is RuntimeChoice.LOCAL:
        return LocalRuntime(spec, state, spec_ports=spec_ports), "asked for with --runtime local"
    if choice is RuntimeChoice.DOCKER:
        raise EngineUnavailable(
            "the docker runtime is not available in this version",
            hint="use --runtime local (the embedded default)",
        )
    from sandbox.doctor.checks import Status, check_engine, check_images

    engine = check_engine()
    if engine.status is not Status.OK:
        return LocalRuntime(spec, state, spec_ports=spec_ports), f"local: no Docker engine answers ({engine.detail})"
    images = check_images(spec)
    if images.status is not Status.OK:
        return LocalRuntime(spec, state, spec_ports=spec_ports), f"local: a Docker engine answers but its images are missing ({images.detail})"
    return LocalRuntime(spec, state, spec_ports=spec_ports), "local: the docker runtime is not available in this version"
