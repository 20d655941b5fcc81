"""The local supervisor: one daemon per sandbox that runs every component.

``aether-sandbox up`` starts it detached and watches ``status.json`` for
progress; ``down``, ``restart``, ``stop``, ``start``, ``kill`` and ``status`` talk to it over a
Unix socket.
It starts components in dependency order (independent ones concurrently),
puts each into its cgroup, watches them, restarts crashed ones under a
restart policy, records why a process died (an OOM kill at its memory limit
included), samples CPU and memory, and on stop brings everything down in
reverse order.

Run as ``python -m sandbox.runtimes.local.supervisor STATE_DIR``.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socketserver
import sys
import threading
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path

from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.process import ManagedServer
from sandbox.infra.procstats import tree_memory
from sandbox.runtimes.base import ComponentStatus, Usage, stopped_detail
from sandbox.runtimes.local import cgroups
from sandbox.runtimes.local.components import Context, after_start, build_server
from sandbox.runtimes.local.plan import ComponentPlan, Plan
from sandbox.runtimes.local.procstats import TreeCpu
from sandbox.runtimes.local.state import StateDir, read_json, write_json

log = logging.getLogger("aether-sandbox.supervisor")

#: Restart policy: at most this many restarts of one component within the window.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 120.0
MONITOR_INTERVAL_S = 0.5
HEALTH_INTERVAL_S = 2.0


class Supervised:
    """One component and everything the supervisor knows about it."""

    def __init__(self, plan: ComponentPlan) -> None:
        self.plan = plan
        self.server: ManagedServer | None = None
        self.cgroup: cgroups.Cgroup | None = None
        self.state = "pending" if plan.available else "unavailable"
        self.health = "unknown"
        self.detail = "" if plan.available else plan.why_unavailable
        self.restarts = 0
        self.restart_times: deque[float] = deque()
        self.done = threading.Event()
        """Set once the component is healthy, failed or unavailable."""
        self.cpu_enforced = False
        self.oom_seen = 0
        self.tree_cpu = TreeCpu()
        self.last_health = 0.0
        self.lock = threading.Lock()
        if not plan.available:
            self.done.set()

    def status(self) -> ComponentStatus:
        """A snapshot for ``status``."""
        p = self.plan
        usage = Usage(
            cpu_request_m=p.cpu_request_m,
            cpu_limit_m=p.cpu_limit_m,
            memory_request_mib=p.memory_request_mib,
            memory_limit_mib=p.memory_limit_mib,
        )
        pid = self.server.pid if self.server and self.server.is_running() else None
        if pid:
            if self.cgroup:
                usage.cpu_m = self.cgroup.cpu_millicores()
                mem = self.cgroup.memory_bytes()
                usage.memory_mib = None if mem is None else round(mem / 2**20, 1)
            else:
                usage.cpu_m = self.tree_cpu.millicores(pid)
                usage.memory_mib = round(tree_memory(pid).rss_mib, 1)
            if usage.cpu_m is not None:
                usage.cpu_m = round(usage.cpu_m, 1)
        if self.cgroup:
            usage.enforced = True
            usage.enforcement = f"{self.cgroup.h.describe()}: memory limit" + (
                ", CPU quota" if self.cpu_enforced else " (CPU quota applies once healthy)"
            )
        else:
            usage.enforcement = "measured only"
        url = f"http://127.0.0.1:{p.port}" if p.port and p.health == "http" else None
        return ComponentStatus(
            name=p.name, state=self.state, health=self.health, port=p.port, pid=pid, url=url,
            restarts=self.restarts, detail=self.detail, usage=usage,
            startup_s=round(self.server.startup_seconds, 3) if self.server and self.server.startup_seconds else None,
        )


class Supervisor:
    """Runs one sandbox's plan until asked to stop."""

    def __init__(self, state: StateDir, plan: Plan) -> None:
        self.state = state
        self.plan = plan
        self.items = {c.name: Supervised(c) for c in plan.components}
        self.creds, _ = state.credentials()
        self.servers: dict[str, ManagedServer] = {}
        self.context = Context(state, plan, self.servers, self.creds)
        self.hierarchy, self.cgroup_note = cgroups.detect()
        self.stopping = threading.Event()
        self.notes: list[str] = []
        self._status_lock = threading.Lock()

    # ---- start -------------------------------------------------------------------

    def start_all(self) -> None:
        """Start every available component once its dependencies are done, concurrently."""
        threads = [threading.Thread(target=self._start_when_ready, args=(item,), daemon=True) for item in self.items.values()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _start_when_ready(self, item: Supervised) -> None:
        if not item.plan.available:
            return
        for dep in item.plan.depends_on:
            dep_item = self.items.get(dep)
            if dep_item is None:
                continue
            dep_item.done.wait()
            if dep_item.state in ("failed", "crashed"):
                item.state, item.detail = "failed", f"not started: dependency {dep} failed"
                item.done.set()
                return
        if self.stopping.is_set():
            item.state = "stopped"
            item.done.set()
            return
        try:
            self._start(item)
        except Exception as exc:  # noqa: BLE001 - recorded and reported by `up`
            item.state, item.health = "failed", "unhealthy"
            item.detail = self._oom_reason(item) or str(exc)
            log.error("%s failed to start: %s", item.plan.name, item.detail)
        finally:
            item.done.set()
            self.write_status()

    def _start(self, item: Supervised) -> None:
        c = item.plan
        item.state, item.health, item.detail = "starting", "unknown", ""
        self.write_status()
        server = item.server or build_server(c, self.state, self.context)
        item.server = server
        self.servers[c.name] = server
        if self.hierarchy and item.cgroup is None:
            item.cgroup = cgroups.Cgroup(self.hierarchy, f"aether-sandbox/{self.state.key}/{c.name}")
            owner = server.popen_options().get("user")
            item.cgroup.create(memory_mib=c.memory_limit_mib, owner_uid=owner)
            base_options, join = server.popen_options, item.cgroup.join
            server.popen_options = lambda: {**base_options(), "preexec_fn": join}  # type: ignore[method-assign]
        if item.cgroup:
            item.cgroup.limit_cpu(None)  # start-up burst; the quota applies once healthy
            item.cpu_enforced = False
            item.oom_seen = item.cgroup.oom_kills()
        server.start()
        if isinstance(server, EmbeddedPostgres):
            for db in sorted({d for p in self.plan.components for d in p.databases}):
                server.create_database(db)
            if not server.timescaledb_available:
                self._note("TimescaleDB extension absent: time-series tables are plain tables with a time index")
        if hook := after_start(c, server):
            hook()
        if item.cgroup:
            for pid in _tree(server.pid):
                item.cgroup.add(pid)
            item.cgroup.limit_cpu(c.cpu_limit_m)
            item.cpu_enforced = True
        item.state, item.health = "running", "healthy"
        item.last_health = time.monotonic()
        log.info("%s healthy on port %s (pid %s)", c.name, c.port, server.pid)

    def _note(self, note: str) -> None:
        if note not in self.notes:
            self.notes.append(note)

    # ---- watch -------------------------------------------------------------------

    def monitor_once(self) -> None:
        """Detect exits, restart under the policy, refresh health."""
        now = time.monotonic()
        for item in self.items.values():
            if item.state != "running" or item.server is None or not item.lock.acquire(blocking=False):
                continue
            try:
                if not item.server.is_running():
                    self._handle_exit(item)
                elif now - item.last_health >= HEALTH_INTERVAL_S:
                    item.last_health = now
                    try:
                        ok = item.server.ready()
                    except Exception as exc:  # noqa: BLE001 - a probe that times out under load is unhealthy, not fatal
                        ok = f"{type(exc).__name__}: {exc}"
                    item.health = "healthy" if ok is True else "unhealthy"
                    if ok is not True:
                        item.detail = f"health check: {ok}"
                    elif item.detail.startswith("health check"):
                        item.detail = ""
            finally:
                item.lock.release()

    def _handle_exit(self, item: Supervised) -> None:
        server = item.server
        assert server is not None
        code = server.exit_status
        tail = server.log_tail(5)
        server.stop()  # reap it and sweep its process group
        if oom_reason := self._oom_reason(item):
            reason = oom_reason
        elif code is not None and code < 0:
            reason = f"killed by signal {signal.Signals(-code).name}"
        else:
            reason = f"exited with status {code}"
        item.state, item.health = "crashed", "unhealthy"
        item.detail = reason + (f"; last log: {tail[-1]}" if tail else "")
        log.warning("%s %s", item.plan.name, item.detail)
        self.write_status()
        now = time.monotonic()
        while item.restart_times and now - item.restart_times[0] > RESTART_WINDOW_S:
            item.restart_times.popleft()
        if len(item.restart_times) >= MAX_RESTARTS:
            item.state = "failed"
            item.detail = f"{reason}; not restarted: {MAX_RESTARTS} restarts within {RESTART_WINDOW_S:.0f} s"
            return
        item.restart_times.append(now)
        item.restarts += 1
        threading.Thread(target=self._restart_after_crash, args=(item, reason), daemon=True).start()

    def _restart_after_crash(self, item: Supervised, reason: str) -> None:
        time.sleep(min(2 ** (item.restarts - 1), 8) * 0.5)  # back off between restarts of a crash loop
        with item.lock:
            if self.stopping.is_set() or item.state == "stopped":
                return  # going down, or held stopped by `stop` meanwhile
            try:
                self._start(item)
                item.detail = f"restarted after: {reason}"
            except Exception as exc:  # noqa: BLE001
                item.state, item.detail = "crashed", f"restart failed: {exc}"
        self.write_status()

    @staticmethod
    def _oom_reason(item: Supervised) -> str | None:
        """The reason to report when the kernel OOM-killed the component since it started."""
        oom = item.cgroup.oom_kills() if item.cgroup else 0
        if oom <= item.oom_seen:
            return None
        item.oom_seen = oom
        return f"killed by the kernel: memory limit of {item.plan.memory_limit_mib} MiB exceeded (OOM)"

    def restart(self, name: str) -> ComponentStatus:
        """Stop and start one component (the ``restart`` command)."""
        item = self.items[name]
        with item.lock:
            if item.server is not None:
                item.server.stop()
            item.restarts += 1
            self._start(item)
        self.write_status()
        return item.status()

    def stop(self, name: str) -> ComponentStatus:
        """Stop one component and hold it stopped: the monitor restarts only running components."""
        item = self.items[name]
        with item.lock:
            if item.server is not None:
                item.server.stop()
            item.state, item.health = "stopped", "unknown"
            item.detail = stopped_detail(time.strftime("%H:%M:%S"))
        self.write_status()
        log.info("%s stopped and held", name)
        return item.status()

    def start(self, name: str) -> ComponentStatus:
        """Start a component held by :meth:`stop` (or one that failed) and wait until it is healthy."""
        item = self.items[name]
        with item.lock:
            if item.state not in ("running", "starting"):
                item.restart_times.clear()  # a fresh start: the crash-restart budget starts over
                try:
                    self._start(item)
                except Exception as exc:  # noqa: BLE001 - reported in the component's status
                    item.state, item.health = "failed", "unhealthy"
                    item.detail = self._oom_reason(item) or f"start failed: {exc}"
        self.write_status()
        return item.status()

    def kill(self, name: str) -> int:
        """SIGKILL the component's process, as a crash would: the monitor sees the exit and restarts it."""
        item = self.items[name]
        pid = item.server.pid if item.server is not None and item.server.is_running() else None
        if item.state != "running" or pid is None:
            raise LookupError(f"{name} is not running ({item.state})")
        os.kill(pid, signal.SIGKILL)
        log.info("%s killed (pid %s) on request", name, pid)
        return pid

    # ---- report ------------------------------------------------------------------

    def snapshot(self) -> dict:
        """The status document ``up`` and ``status`` read."""
        notes = list(self.notes)
        notes.append(
            f"budgets enforced by {self.hierarchy.describe()}" if self.hierarchy else f"budgets measured only: {self.cgroup_note}"
        )
        return {
            "supervisor_pid": os.getpid(),
            "stopping": self.stopping.is_set(),
            "updated": time.time(),
            "components": [asdict(item.status()) for item in self.items.values()],
            "notes": notes,
        }

    def write_status(self) -> None:
        """Write ``status.json`` atomically."""
        with self._status_lock:
            write_json(self.state.status_json, self.snapshot())

    # ---- stop --------------------------------------------------------------------

    def stop_all(self) -> None:
        """Stop every component in reverse start order and remove the cgroups."""
        for item in reversed(list(self.items.values())):
            with item.lock:
                if item.server is not None:
                    try:
                        item.server.stop()
                    except Exception as exc:  # noqa: BLE001 - keep stopping the rest
                        log.error("stopping %s: %s", item.plan.name, exc)
                if item.state in ("running", "starting", "crashed"):
                    item.state, item.health = "stopped", "unknown"
                if item.cgroup:
                    item.cgroup.remove()
        if self.hierarchy:
            for base in dict.fromkeys((self.hierarchy.cpu, self.hierarchy.cpuacct, self.hierarchy.memory)):
                if base is not None:
                    for path in (base / "aether-sandbox" / self.state.name, base / "aether-sandbox"):
                        try:
                            path.rmdir()
                        except OSError:
                            pass
        self.write_status()

    # ---- main loop ---------------------------------------------------------------

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT or a ``down`` command, then stop everything."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stopping.set())
        write_json(self.state.supervisor_json, {"pid": os.getpid(), "started": time.time()})
        control = _ControlServer(self)
        threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True).start()
        self.write_status()
        starter = threading.Thread(target=self.start_all, daemon=True)
        starter.start()
        try:
            while not self.stopping.wait(MONITOR_INTERVAL_S):
                self.monitor_once()
                self.write_status()
        finally:
            self.stopping.set()
            starter.join(timeout=90)
            self.stop_all()
            control.shutdown()
            control.server_close()
            self.state.control_socket.unlink(missing_ok=True)
            self.state.supervisor_json.unlink(missing_ok=True)
            log.info("supervisor stopped")


def _tree(pid: int | None) -> list[int]:
    from sandbox.infra.procstats import process_tree

    return [] if pid is None else [p.pid for p in process_tree(pid)]


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        supervisor: Supervisor = self.server.supervisor  # type: ignore[attr-defined]
        try:
            request = json.loads(self.rfile.readline() or b"{}")
            command = request.get("cmd")
            if command == "status":
                reply = {"ok": True, "status": supervisor.snapshot()}
            elif command in ("restart", "stop", "start", "kill"):
                name = request.get("component", "")
                if name not in supervisor.items or not supervisor.items[name].plan.available:
                    reply = {"ok": False, "error": f"no component '{name}' in this sandbox"}
                elif command == "kill":
                    reply = {"ok": True, "pid": supervisor.kill(name)}
                else:
                    reply = {"ok": True, "component": asdict(getattr(supervisor, command)(name))}
            elif command == "down":
                supervisor.stopping.set()
                reply = {"ok": True}
            else:
                reply = {"ok": False, "error": f"unknown command {command!r}"}
        except Exception as exc:  # noqa: BLE001 - reported to the client
            reply = {"ok": False, "error": str(exc)}
        self.wfile.write(json.dumps(reply, default=str).encode() + b"\n")


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor
        path = supervisor.state.control_socket
        path.unlink(missing_ok=True)
        super().__init__(str(path), _Handler)
        os.chmod(path, 0o600)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the daemon."""
    args = argv if argv is not None else sys.argv[1:]
    root = Path(args[0])
    state = StateDir(root, root.name)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    plan = Plan.from_dict(read_json(state.plan_json) or {})
    Supervisor(state, plan).run()


if __name__ == "__main__":
    main()
