"""The individual checks ``aether-sandbox doctor`` runs.

Each check returns a :class:`Check`: what was looked at, whether it is usable,
what was found, and how to fix it when it is not.  Checks are independent and
cheap (no server is started) so that they can run concurrently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from sandbox.runtimes import engine
from sandbox.spec.models import PlatformSpec


class Status(StrEnum):
    """Outcome of one check."""

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Check:
    """One thing doctor looked at."""

    name: str
    status: Status
    detail: str
    fix: str = ""
    needed_by: tuple[str, ...] = field(default_factory=tuple)
    """Runtimes that cannot run without it (``docker``, ``local``); empty when optional."""


def check_engine() -> Check:
    """Is a Docker engine answering on its socket?"""
    try:
        info = engine.engine_info()
    except engine.EngineUnreachable as exc:
        return Check("docker engine", Status.FAIL, str(exc),
                     "install Docker Engine and start it (dockerd), or use --runtime local", ("docker",))
    cgroup = f", cgroup v{info.cgroup_version}" if info.cgroup_version else ""
    return Check("docker engine", Status.OK, f"Docker {info.version} (API {info.api_version}{cgroup})", needed_by=("docker",))


def _version_of(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def check_compose() -> Check:
    """Is docker compose available, as the v2 plugin or the v1 command?"""
    if shutil.which("docker") and (v2 := _version_of(["docker", "compose", "version", "--short"])):
        return Check("docker compose", Status.OK, f"compose v2 plugin {v2}", needed_by=("docker",))
    if shutil.which("docker-compose") and (v1 := _version_of(["docker-compose", "version", "--short"])):
        return Check("docker compose", Status.OK, f"docker-compose {v1} (v1)", needed_by=("docker",))
    return Check("docker compose", Status.FAIL, "neither `docker compose` nor `docker-compose` answers",
                 "install the compose plugin (apt-get install docker-compose-plugin) or docker-compose", ("docker",))


def check_images(spec: PlatformSpec) -> Check:
    """Are the images of the official or the offline set (user overrides applied) in the engine?"""
    from sandbox.errors import InvalidInput
    from sandbox.runtimes.docker.images import missing, offline_available, resolve_images

    try:
        listed = engine.images()
        tags = engine.image_tags(listed=listed)
    except engine.EngineUnreachable as exc:
        return Check("container images", Status.FAIL, f"cannot list images: {exc}", "start the Docker engine", ("docker",))
    try:
        official = resolve_images(spec, offline=False)
        offline = resolve_images(spec, offline=True)
    except InvalidInput as exc:
        return Check("container images", Status.FAIL, f"image overrides: {exc}",
                     exc.hint or "fix the image overrides (docs/docker-images.md)", ("docker",))
    core = {c.name for c in spec.components if "observability" not in c.profiles}
    official_missing = missing({n: c for n, c in official.items() if n in core}, tags)
    offline_missing = missing(offline, tags)
    overridden = sum(c.overridden for c in official.values())
    detail = (f"official set {_count(official, core, official_missing)}, "
              f"offline set {_count(offline, set(offline), offline_missing)} present"
              + (f"; {overridden} overridden" if overridden else ""))
    if not official_missing or offline_available(spec):
        from sandbox.runtimes.docker.build import stale_project_images

        in_use = {c.image for c in offline.values()} | {c.image for c in official.values()}
        stale = stale_project_images(spec, in_use, listed, offline=True)  # the digest read once; the fix says both
        if stale:
            return Check("container images", Status.WARN, f"{detail}; {stale[0].split(': its containers')[0]}",
                         "aether-sandbox images build --offline (or images build for the official set): the "
                         "containers run the image's code, not this checkout's", ("docker",))
        return Check("container images", Status.OK, detail, needed_by=("docker",))
    return Check("container images", Status.FAIL, detail + f"; offline set missing e.g. {', '.join(offline_missing[:3])}",
                 "aether-sandbox images build --offline (or pull the official images where a registry is reachable)",
                 ("docker",))


def _count(choices: dict, names: set[str], absent: list[str]) -> str:
    images = {c.image for n, c in choices.items() if n in names}
    return f"{len(images) - len(absent)}/{len(images)}"


def _mounts() -> list[tuple[str, str, str]]:
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return []
    return [(p[1], p[2], p[3]) for line in lines if len(p := line.split()) >= 4]


def check_cgroups() -> Check:
    """Can the local runtime put processes into cgroups with CPU and memory limits?"""
    mounts = _mounts()
    v1 = {Path(point).name: point for point, fstype, _ in mounts if fstype == "cgroup"}
    v2 = [point for point, fstype, _ in mounts if fstype == "cgroup2"]
    if "cpu" in v1 and "memory" in v1 and all(os.access(v1[c], os.W_OK) for c in ("cpu", "memory")):
        return Check("cgroup limits", Status.OK, "cgroup v1 cpu and memory controllers writable: budgets enforced")
    for point in v2:
        controllers = Path(point, "cgroup.controllers")
        try:
            available = controllers.read_text().split()
        except OSError:
            continue
        if {"cpu", "memory"} <= set(available) and os.access(point, os.W_OK):
            return Check("cgroup limits", Status.OK, f"cgroup v2 at {point} with cpu and memory: budgets enforced")
    return Check("cgroup limits", Status.WARN, "no writable cgroup with cpu and memory controllers: budgets measured only",
                 "run as root on a host with cgroup v1 or v2 cpu and memory controllers to enforce budgets")


#: Which platform component each embedded binary stands in for.
_BINARY_FOR = {
    "initdb": "PostgreSQL (timescaledb)",
    "pg_ctl": "PostgreSQL (timescaledb)",
    "postgres": "PostgreSQL (timescaledb)",
    "tansu": "Kafka-compatible broker (kafka)",
    "redis-server": "Redis (redis)",
    "nats-server": "NATS JetStream (nats)",
}


def check_binaries() -> list[Check]:
    """Are the embedded infrastructure binaries of the local runtime installed?"""
    from sandbox.infra.binaries import locate_all

    by_component: dict[str, list] = {}
    for status in locate_all():
        by_component.setdefault(_BINARY_FOR.get(status.name, status.name), []).append(status)
    checks = []
    for component, statuses in by_component.items():
        missing = [s for s in statuses if not s.found]
        if missing:
            checks.append(Check(f"embedded {component}", Status.FAIL,
                                "not found: " + ", ".join(s.name for s in missing),
                                missing[0].install_hint, ("local",)))
        else:
            where = statuses[0]
            checks.append(Check(f"embedded {component}", Status.OK, f"{where.name} from {where.source}", needed_by=("local",)))
    return checks


def check_feast() -> Check:
    """Is the Feast virtualenv installed (it is created on first use, see docs/feast.md)?"""
    from sandbox.features import venv

    if venv.installed():
        return Check("embedded feast", Status.OK, f"feast {venv.FEAST_VERSION} in {venv.venv_dir()}")
    return Check("embedded feast", Status.WARN,
                 f"feast {venv.FEAST_VERSION} not installed yet: the feast component installs it on first start (~600 MiB)",
                 "aether-sandbox features install")


def check_debootstrap() -> Check:
    """Can offline images be built from Debian packages here?"""
    if path := shutil.which("debootstrap"):
        return Check("debootstrap", Status.OK, f"at {path} (builds the offline image base)")
    return Check("debootstrap", Status.WARN, "not installed: offline images cannot be built",
                 "apt-get install debootstrap")


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def check_ports(spec: PlatformSpec) -> Check:
    """Are the host ports the docker runtime publishes free on 127.0.0.1?"""
    wanted = {c.host_port: c.name for c in spec.components if c.host_port and "observability" not in c.profiles}
    taken = [f"{port} ({name})" for port, name in sorted(wanted.items()) if not _port_free(port)]
    if not taken:
        return Check("host ports", Status.OK, f"all {len(wanted)} sandbox ports free on 127.0.0.1", needed_by=("docker",))
    return Check("host ports", Status.FAIL, "in use: " + ", ".join(taken),
                 "stop what listens there (ss -ltnp shows it); the local runtime picks other ports by itself",
                 ("docker",))
