"""The few Docker Engine API calls the docker runtime needs, over the engine's Unix socket.

Reads (lists, inspect, stats, events, logs) and two writes: a container's CPU
limit (:meth:`Engine.set_cpu_limit`) and removing the anonymous volumes compose
leaves behind (:meth:`Engine.remove_volume`); creating and removing containers goes
through the compose CLI, so a user's plain ``docker compose`` and the runtime
see the same project.  Standard library only, like
:mod:`sandbox.runtimes.engine`, whose socket discovery it shares.
"""

from __future__ import annotations

import http.client
import json
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

from sandbox.runtimes import engine
from sandbox.runtimes.base import EngineUnavailable

PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class _UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


class Engine:
    """A client of the local engine's API (GET only)."""

    def __init__(self, timeout: float = 30.0) -> None:
        path = engine.socket_path()
        if path is None:
            raise EngineUnavailable("DOCKER_HOST names a TCP engine; the docker runtime speaks to a Unix socket only",
                                    hint="unset DOCKER_HOST or point it at unix:///var/run/docker.sock")
        self.path = path
        self.timeout = timeout

    def _open(self, path: str, params: dict[str, Any] | None, timeout: float | None,
              body: dict[str, Any] | None = None, method: str = "") -> tuple[_UnixHTTP, http.client.HTTPResponse]:
        url = path + ("?" + urlencode(params) if params else "")
        conn = _UnixHTTP(self.path, timeout)
        try:
            if body is None:
                conn.request(method or "GET", url)
            else:
                conn.request(method or "POST", url, json.dumps(body), {"Content-Type": "application/json"})
            response = conn.getresponse()
        except OSError as exc:
            conn.close()
            raise EngineUnavailable(f"the Docker engine at {self.path} did not answer: {exc}",
                                    hint="start the Docker engine (dockerd)") from exc
        if response.status >= 400:
            text = response.read().decode(errors="replace")
            conn.close()
            raise LookupError(f"{path}: HTTP {response.status}: {text.strip()}")
        return conn, response

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        """The JSON answer of ``GET path``."""
        conn, response = self._open(path, params, self.timeout)
        try:
            return json.loads(response.read())
        finally:
            conn.close()

    def set_cpu_limit(self, container: str, millicores: int) -> None:
        """Hold ``container`` to ``millicores`` of CPU from now on (``docker update --cpus``)."""
        conn, response = self._open(f"/containers/{quote(container)}/update", None, self.timeout,
                                    {"NanoCpus": millicores * 1_000_000})
        try:
            response.read()
        finally:
            conn.close()

    def remove_volume(self, name: str) -> bool:
        """Delete volume ``name``; False when it is gone already or still in use."""
        try:
            conn, response = self._open(f"/volumes/{quote(name)}", None, self.timeout, method="DELETE")
        except LookupError:
            return False
        conn.close()
        return True

    # ---- containers ----------------------------------------------------------------

    def containers(self, project: str) -> list[dict[str, Any]]:
        """Every container of compose project ``project``, running or not."""
        filters = json.dumps({"label": [f"{PROJECT_LABEL}={project}"]})
        return self.get("/containers/json", {"all": "1", "filters": filters})

    def inspect(self, container: str) -> dict[str, Any]:
        """``docker inspect`` of one container."""
        return self.get(f"/containers/{quote(container)}/json")

    def stats(self, container: str) -> dict[str, Any]:
        """One stats sample with the previous CPU reading (the engine waits one interval for it)."""
        return self.get(f"/containers/{quote(container)}/stats", {"stream": "0"})

    def oom_events(self, container: str, since: float) -> int:
        """How many times the kernel OOM-killed a process of ``container`` since ``since`` (the engine's event log)."""
        filters = json.dumps({"container": [container], "event": ["oom"]})
        conn, response = self._open("/events", {"since": f"{since:.0f}", "until": f"{time.time():.0f}", "filters": filters}, 10)
        try:
            body = response.read().decode(errors="replace")
        finally:
            conn.close()
        return sum(1 for line in body.splitlines() if line.strip())

    def volumes(self, project: str) -> list[str]:
        """Names of the named volumes of compose project ``project``."""
        filters = json.dumps({"label": [f"com.docker.compose.project={project}"]})
        return [v["Name"] for v in (self.get("/volumes", {"filters": filters}).get("Volumes") or [])]

    def logs(self, container: str, *, tail: int, follow: bool) -> Iterator[str]:
        """Log lines of ``container`` (stdout and stderr, demultiplexed)."""
        params = {"stdout": "1", "stderr": "1", "tail": str(tail), "follow": "1" if follow else "0"}
        conn, response = self._open(f"/containers/{quote(container)}/logs", params, None if follow else self.timeout)
        pending = b""
        try:
            while True:
                header = response.read(8)
                if len(header) < 8:
                    break
                _, size = struct.unpack(">BxxxL", header)
                pending += response.read(size)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
            if pending:
                yield pending.decode(errors="replace")
        finally:
            conn.close()

    def tail(self, container: str, lines: int = 15) -> list[str]:
        """The last ``lines`` log lines of ``container`` (empty when it has none or is gone)."""
        try:
            return list(self.logs(container, tail=lines, follow=False))
        except (LookupError, EngineUnavailable):
            return []
