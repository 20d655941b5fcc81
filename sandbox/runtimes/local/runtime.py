"""The local runtime: the platform as processes on embedded infrastructure.

A thin client of the per-sandbox supervisor daemon (see
:mod:`sandbox.runtimes.local.supervisor`): ``up`` writes the plan, starts the
supervisor detached and follows its progress; the other commands ask it over
its control socket, or read what it last wrote when it is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sandbox.infra.procstats import pid_alive
from sandbox.runtimes.base import (
    ComponentFailed,
    ComponentStatus,
    NoSuchService,
    NotRunning,
    ProgressFn,
    Runtime,
    SandboxStatus,
    Usage,
)
from sandbox.runtimes.local.plan import make_plan
from sandbox.runtimes.local.state import StateDir, read_json, write_json
from sandbox.spec.models import PlatformSpec

TERMINAL = ("running", "failed", "crashed", "unavailable", "stopped")


def _component(data: dict[str, Any]) -> ComponentStatus:
    usage = Usage(**data.pop("usage", {}))
    return ComponentStatus(**data, usage=usage)


class LocalRuntime(Runtime):
    """Runs every component as a local process under a supervisor."""

    name = "local"

    def __init__(self, spec: PlatformSpec, state: StateDir, *, spec_ports: bool = True) -> None:
        self.spec = spec
        self.state = state
        self.spec_ports = spec_ports

    # ---- the supervisor ----------------------------------------------------------

    def supervisor_pid(self) -> int | None:
        """PID of the live supervisor, or ``None``."""
        info = read_json(self.state.supervisor_json)
        pid = info.get("pid") if isinstance(info, dict) else None
        return pid if isinstance(pid, int) and pid_alive(pid) else None

    def _ask(self, request: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
        path = str(self.state.control_socket)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            try:
                sock.connect(path)
            except OSError as exc:
                raise NotRunning(
                    f"sandbox '{self.state.name}' is not up (no supervisor answers)",
                    hint="start it with `aether-sandbox up`",
                ) from exc
            sock.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data or b"{}")

    def _spawn_supervisor(self) -> int:
        log = self.state.supervisor_log.open("ab")
        proc = subprocess.Popen(  # noqa: S603 - our own module
            [sys.executable, "-m", "sandbox.runtimes.local.supervisor", str(self.state.root)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=self.state.root,
        )
        log.close()
        return proc.pid

    # ---- Runtime -----------------------------------------------------------------

    def up(
        self,
        components: Sequence[str] = (),
        *,
        profile: str | None = None,
        keep_on_failure: bool = False,
        timeout: float = 120.0,
        progress: ProgressFn | None = None,
    ) -> SandboxStatus:
        if self.supervisor_pid():
            status = self.status()
            if progress:
                progress("sandbox", "already up")
            return status
        self.state.ensure()
        self.state.credentials()
        plan = make_plan(self.spec, self.state.name, list(components), profile, spec_ports=self.spec_ports)
        write_json(self.state.plan_json, plan.to_dict())
        self.state.status_json.unlink(missing_ok=True)
        pid = self._spawn_supervisor()
        seen: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            snapshot = read_json(self.state.status_json)
            if isinstance(snapshot, dict):
                for c in snapshot["components"]:
                    event = c["state"] + (f": {c['detail']}" if c["state"] != "running" and c["detail"] else "")
                    if progress and seen.get(c["name"]) != event:
                        progress(c["name"], event)
                    seen[c["name"]] = event
                states = {c["name"]: c for c in snapshot["components"]}
                failed = [c for c in states.values() if c["state"] in ("failed", "crashed")]
                if failed or all(c["state"] in TERMINAL for c in states.values()):
                    break
            if not pid_alive(pid):
                raise ComponentFailed("supervisor", "exited during start-up", log_lines=_tail(self.state.supervisor_log, 15))
            if time.monotonic() > deadline:
                pending = [n for n, c in (states.items() if isinstance(snapshot, dict) else []) if c["state"] not in TERMINAL]
                self._fail(ComponentFailed(pending[0] if pending else "sandbox", f"not healthy within {timeout:.0f} s"),
                           keep_on_failure)
            time.sleep(0.05)
        if failed:
            first = failed[0]
            log_lines = _tail(self.state.data(first["name"]) / f"{first['name']}.log", 15)
            if first["name"] in ("timescaledb", "redis", "nats", "kafka"):
                launcher = {"timescaledb": "postgres"}.get(first["name"], first["name"])
                log_lines = _tail(self.state.data(first["name"]) / f"{launcher}.log", 15)
            self._fail(ComponentFailed(first["name"], first["detail"] or first["state"], log_lines=log_lines,
                                       hint="see the log lines above; `aether-sandbox logs COMPONENT` shows more"),
                       keep_on_failure)
        return self.status()

    def _fail(self, error: ComponentFailed, keep: bool) -> None:
        if not keep:
            self.down()
            error.hint = (error.hint + "; " if error.hint else "") + "everything started was stopped (--keep-on-failure keeps it)"
        raise error

    def down(self, *, volumes: bool = False) -> None:
        pid = self.supervisor_pid()
        if pid:
            try:
                self._ask({"cmd": "down"}, timeout=10)
            except (NotRunning, OSError, ValueError):
                os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 90
            while pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        self._kill_leftovers()
        if volumes and self.state.root.exists():
            shutil.rmtree(self.state.root)

    def _kill_leftovers(self) -> None:
        """Stop, by PID, anything a crashed supervisor left running."""
        snapshot = read_json(self.state.status_json)
        if not isinstance(snapshot, dict):
            return
        for c in snapshot.get("components", []):
            pid = c.get("pid")
            if isinstance(pid, int) and pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass

    def status(self) -> SandboxStatus:
        if self.supervisor_pid():
            try:
                snapshot = self._ask({"cmd": "status"}, timeout=10)["status"]
                up = True
            except (NotRunning, KeyError):
                snapshot, up = read_json(self.state.status_json), False
        else:
            snapshot, up = read_json(self.state.status_json), False
        if not isinstance(snapshot, dict):
            return SandboxStatus(self.state.name, self.name, False, [], ["never started"])
        components = [_component(dict(c)) for c in snapshot["components"]]
        if not up:
            for c in components:
                if c.state in ("running", "starting"):
                    c.state, c.pid, c.health = "stopped", None, "unknown"
        return SandboxStatus(self.state.name, self.name, up, components, snapshot.get("notes", []))

    def logs(self, component: str, *, tail: int = 100, follow: bool = False) -> Iterator[str]:
        if component not in self.spec.names():
            raise NoSuchService(f"unknown component '{component}'", hint="`aether-sandbox spec` lists every component")
        directory = self.state.data(component)
        files = sorted(directory.glob("*.log")) if directory.exists() else []
        if not files:
            raise NoSuchService(f"{component} has no logs in sandbox '{self.state.name}'", hint="is it up? see `aether-sandbox status`")
        path = files[0]
        yield from _tail(path, tail)
        if follow:
            with path.open("r", errors="replace") as handle:
                handle.seek(0, os.SEEK_END)
                while True:
                    line = handle.readline()
                    if line:
                        yield line.rstrip("\n")
                    elif not self.supervisor_pid():
                        return
                    else:
                        time.sleep(0.2)

    def restart(self, component: str) -> ComponentStatus:
        if component not in self.spec.names():
            raise NoSuchService(f"unknown component '{component}'", hint="`aether-sandbox spec` lists every component")
        reply = self._ask({"cmd": "restart", "component": component}, timeout=120)
        if not reply.get("ok"):
            raise NoSuchService(reply.get("error", "restart failed"), hint="see `aether-sandbox status`")
        return _component(reply["component"])

    def _control(self, command: str, component: str, timeout: float) -> dict[str, Any]:
        if component not in self.spec.names():
            raise NoSuchService(f"unknown component '{component}'", hint="`aether-sandbox spec` lists every component")
        reply = self._ask({"cmd": command, "component": component}, timeout=timeout)
        if not reply.get("ok"):
            raise NoSuchService(reply.get("error", f"{command} failed"), hint="see `aether-sandbox status`")
        return reply

    def stop(self, component: str) -> ComponentStatus:
        return _component(self._control("stop", component, 60)["component"])

    def start(self, component: str, timeout: float = 120.0) -> ComponentStatus:
        status = _component(self._control("start", component, timeout)["component"])
        if status.state != "running":
            raise ComponentFailed(component, f"did not start: {status.detail or status.state}",
                                  log_lines=_tail(self.state.data(component) / f"{component}.log", 15))
        return status

    def kill(self, component: str) -> int:
        return int(self._control("kill", component, 10)["pid"])

def _tail(path, lines: int) -> list[str]:
    try:
        with open(path, "rb") as handle:  # noqa: PTH123
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return []
    return text.splitlines()[-lines:]
