"""A minimal, dependency-free view of the Docker engine for fast checks.

``doctor`` and the runtime factory must answer in well under a second whether
an engine is there, so this speaks the Engine API over its Unix socket with
the standard library alone; the docker runtime itself uses the docker SDK.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
from dataclasses import dataclass
from typing import Any

DEFAULT_SOCKET = "/var/run/docker.sock"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def socket_path() -> str | None:
    """The engine's Unix socket from ``DOCKER_HOST`` or the default; ``None`` for TCP hosts."""
    host = os.environ.get("DOCKER_HOST", "")
    if not host:
        return DEFAULT_SOCKET
    if host.startswith("unix://"):
        return host.removeprefix("unix://")
    return None


@dataclass(frozen=True)
class EngineInfo:
    """What the engine says about itself."""

    version: str
    api_version: str
    cgroup_version: str | None


class EngineUnreachable(Exception):
    """No engine answered; the message says why."""


def _get(path: str, *, timeout: float) -> Any:
    sock = socket_path()
    if sock is None:
        raise EngineUnreachable("DOCKER_HOST names a TCP engine; only Unix sockets are checked")
    if not os.path.exists(sock):
        raise EngineUnreachable(f"no Docker socket at {sock}")
    conn = _UnixConnection(sock, timeout)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read()
    except OSError as exc:
        raise EngineUnreachable(f"the Docker socket {sock} did not answer: {exc}") from exc
    finally:
        conn.close()
    if response.status != 200:
        raise EngineUnreachable(f"the engine answered {path} with HTTP {response.status}")
    return json.loads(body)


def engine_info(timeout: float = 1.0) -> EngineInfo:
    """Version facts of the engine; raises :class:`EngineUnreachable` when none answers."""
    version = _get("/version", timeout=timeout)
    info = _get("/info", timeout=timeout)
    return EngineInfo(
        version=str(version.get("Version", "?")),
        api_version=str(version.get("ApiVersion", "?")),
        cgroup_version=info.get("CgroupVersion"),
    )


def images(timeout: float = 1.0) -> list[dict]:
    """The engine's image list (``/images/json``: tags, labels, sizes)."""
    return _get("/images/json", timeout=timeout)


def image_tags(timeout: float = 1.0, listed: list[dict] | None = None) -> set[str]:
    """Every ``repository:tag`` the engine holds (of ``listed`` when given)."""
    listed = images(timeout) if listed is None else listed
    return {tag for image in listed for tag in (image.get("RepoTags") or []) if tag != "<none>:<none>"}
