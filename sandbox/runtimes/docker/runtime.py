"""The docker runtime: the platform as containers, one compose project per sandbox.

``up`` renders the compose files of the spec in use into the sandbox's state
directory (the same generator as ``compose/``), writes the env file holding
the sandbox's credentials, images and host ports, starts ``compose up`` in the
background and follows every container's health until all are healthy, then
checks with the engine API (and the kernel's cgroup files where readable)
that each container's CPU and memory limits equal the spec's budget.  The
project name joins the sandbox name to a digest of its state directory, so
two state roots never share named volumes (or the passwords inside them).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sandbox.errors import StartFailed
from sandbox.infra.ports import free_port, port_in_use
from sandbox.runtimes.base import (
    ComponentFailed,
    ComponentStatus,
    EngineUnavailable,
    NoSuchService,
    NotRunning,
    ProgressFn,
    Runtime,
    SandboxStatus,
    Usage,
    stopped_detail,
)
from sandbox.runtimes.docker import compose as gen
from sandbox.runtimes.docker.api import SERVICE_LABEL, Engine
from sandbox.runtimes.docker.build import stale_project_images
from sandbox.runtimes.docker.composecli import Compose, describe
from sandbox.runtimes.docker.containers import (
    applied_limits,
    epoch,
    health_output,
    kernel_limits,
    progress_word,
    safe_stats,
    usage_now,
)
from sandbox.runtimes.docker.images import ImageChoice, env_var, missing, resolve_images
from sandbox.runtimes.local.plan import select
from sandbox.runtimes.local.state import StateDir, read_json, write_json
from sandbox.spec.budget import budget_of
from sandbox.spec.models import Component, PlatformSpec

#: The project image's user (docker/Dockerfile): owner of the mounted Kraken credentials when we are root.
IMAGE_UID = 10001
POLL_S = 0.5
OFFLINE_NOTES = (
    "offline images: PostgreSQL from Debian packages without the TimescaleDB extension "
    "(time-series tables are plain tables with a time index)",
    "offline images: Tansu instead of Apache Kafka (memory storage: topics do not survive a restart; "
    "it advertises kafka:9092, reachable from the containers only; `replay` counts from a container on the network)",
)


class LimitsNotApplied(StartFailed):
    """The engine did not apply a container's CPU or memory limit as the spec says."""


def project_name(state: StateDir) -> str:
    """The compose project of a sandbox: its name plus a digest of its state directory."""
    return f"aether-{state.key}"


def module_exists(module: str) -> bool:
    """Whether ``python -m module`` can run (the project image is built from this source tree)."""
    try:
        return importlib.util.find_spec(module + ".__main__") is not None
    except ModuleNotFoundError:
        return False


@dataclass
class Planned:
    """One selected component: whether the docker runtime runs it, and where it is published."""

    name: str
    available: bool
    why_unavailable: str = ""
    port: int | None = None
    extra_ports: dict[str, int] | None = None
    http: bool = False
    """True when its health is an HTTP endpoint (its ``url`` is worth showing)."""


class DockerRuntime(Runtime):
    """Runs the platform in containers with compose, sized to the spec's budgets."""

    name = "docker"

    def __init__(self, spec: PlatformSpec, state: StateDir, *, offline: bool, spec_ports: bool = True) -> None:
        self.spec = spec
        self.state = state
        self.offline = offline
        self.spec_ports = spec_ports
        self.project = project_name(state)
        self._compose_up: subprocess.Popen[bytes] | None = None

    # ---- paths and files ---------------------------------------------------------

    @property
    def directory(self) -> Path:
        """Everything the docker runtime keeps for this sandbox."""
        return self.state.root / "docker"

    @property
    def env_file(self) -> Path:
        """The compose env file: credentials, images, host ports (owner-only)."""
        return self.directory / "compose.env"

    @property
    def record_json(self) -> Path:
        """What the latest ``up`` selected and published."""
        return self.directory / "sandbox.json"

    def compose(self, offline: bool | None = None) -> Compose:
        """The compose CLI for this sandbox's project and files."""
        files = [self.directory / "compose" / gen.BASE_FILE]
        if self.offline if offline is None else offline:
            files.append(self.directory / "compose" / gen.OFFLINE_FILE)
        return Compose(self.project, files, self.env_file)

    def _private_credentials(self) -> dict[str, str]:
        path = self.directory / "credentials.json"
        creds = read_json(path)
        if not isinstance(creds, dict):
            creds = {"postgres_password": secrets.token_urlsafe(24)}
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(creds, handle)
        return creds

    def _kraken_dir(self, creds: dict[str, str]) -> Path:
        """The Kraken credential files for the containers, readable by the image's user only where we can chown."""
        directory = self.directory / "kraken"
        directory.mkdir(parents=True, exist_ok=True)
        for key, field in (("api_key", "kraken_api_key"), ("api_secret", "kraken_api_secret")):
            path = directory / key
            if not path.exists():
                path.write_text(creds[field])
        if os.geteuid() == 0:
            for path in (directory, *directory.iterdir()):
                os.chown(path, IMAGE_UID, IMAGE_UID)
                path.chmod(0o500 if path.is_dir() else 0o400)
        else:
            # The container user differs from ours: readable by others (the state root itself is 0711).
            directory.chmod(0o755)
            for path in directory.iterdir():
                path.chmod(0o444)
        return directory

    def _write_project(self, planned: list[Planned], images: dict[str, ImageChoice]) -> None:
        self.state.ensure()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o711)
        gen.write(self.spec, self.directory / "compose")
        self._write_observability()
        creds, _ = self.state.credentials()
        values = {
            gen.V_NAME: self.state.name,
            gen.V_SECRETS_DIR: str(self._kraken_dir(creds)),
            gen.V_PG_PASSWORD: self._private_credentials()["postgres_password"],
            **{var: creds[name] for name, var in gen.CREDENTIAL_VARS.items()},
            **{env_var(name): choice.image for name, choice in images.items()},
        }
        # Start-up burst: containers start without a CPU limit; each gets its limit once healthy (_wait_healthy).
        values.update({gen.cpus_var(c.name): "0" for c in gen.services_of(self.spec)})
        if self.offline:
            values[gen.V_KAFKA_TARGET] = str(self.spec.component("kafka").port)
        # Traces go to Tempo only when it runs (the observability profile with the official images).
        if any(p.name == "tempo" and p.available for p in planned):
            values[gen.V_OTLP_ENDPOINT] = gen.trace_endpoint()
        for p in planned:
            if p.port is not None:
                values[gen.port_var(p.name)] = str(p.port)
            for extra, port in (p.extra_ports or {}).items():
                values[gen.port_var(p.name, extra)] = str(port)
        lines = []
        for key, value in values.items():
            if "'" in value or "\n" in value:
                raise ValueError(f"{key}: a value with a quote or newline cannot go into the env file")
            lines.append(f"{key}='{value}'")
        tmp = self.env_file.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("# Written by aether-sandbox for the docker runtime; secrets: keep private.\n")
            handle.write("\n".join(lines) + "\n")
        os.replace(tmp, self.env_file)

    def _write_observability(self) -> None:
        """The files the observability containers mount, beside the rendered compose files.

        The repository's ``observability/`` (Alertmanager, Grafana, Loki, Tempo
        configurations), with the files generated from the spec in use
        (Prometheus' scrape configuration and rules, the dashboards) written over
        it; readable by the containers' users (Prometheus runs as nobody).
        """
        from sandbox.observability.generate import ROOT, generated

        target = self.directory / "observability"
        tmp = self.directory / "observability.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        if ROOT.is_dir():
            shutil.copytree(ROOT, tmp)
        for relative, text in generated(self.spec).items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        for path in (tmp, *tmp.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)

    def postgres_dsn(self, database: str, port: int) -> str:
        """A DSN of ``database`` for host-side tools: the superuser on the published port ``port`` (from ``status``)."""
        password = self._private_credentials()["postgres_password"]
        return f"postgresql://{gen.PG_USER}:{password}@127.0.0.1:{port}/{database}"

    def kafka_counter(self) -> Callable[..., dict[str, Any]] | None:
        """How a host-side command reads records back from Kafka, when the host cannot do it directly.

        ``None`` with the official broker (its EXTERNAL listener advertises the
        published 127.0.0.1 port).  With the offline set's Tansu, which
        advertises only ``kafka:9092``, a function with the signature of
        :func:`sandbox.replay.verify.consume_run` minus the bootstrap, that
        consumes from a container on the sandbox network (:mod:`.kafkacount`).
        """
        if not self.offline:
            return None
        from sandbox.runtimes.docker.kafkacount import consume_in_network

        return functools.partial(consume_in_network, self)

    # ---- planning ----------------------------------------------------------------

    def _plan(self, components: Sequence[str], profile: str | None) -> tuple[list[Planned], dict[str, ImageChoice]]:
        images = resolve_images(self.spec, offline=self.offline)
        previous = read_json(self.record_json)
        old_ports = {p["name"]: p for p in previous.get("components", [])} if isinstance(previous, dict) else {}
        taken: set[int] = set()

        # A port recorded by the previous `up` is ours while the project's containers run (they hold it).
        ours = bool(old_ports) and bool(Engine().containers(self.project))

        def pick(preferred: int | None, recorded: int | None) -> int:
            for candidate in (recorded, preferred if self.spec_ports else None):
                if candidate and candidate not in taken and ((ours and candidate == recorded) or not port_in_use(candidate)):
                    taken.add(candidate)
                    return candidate
            while (port := free_port()) in taken:
                pass
            taken.add(port)
            return port

        planned: dict[str, Planned] = {}
        for name in select(self.spec, list(components), profile):
            c = self.spec.component(name)
            why = gen.excluded(c) or ""
            if not why and name not in images:
                why = f"no image in the {'offline' if self.offline else 'official'} set" + (f" ({c.notes})" if c.notes else "")
            if not why and c.module and not module_exists(c.module):
                why = f"{c.module} is not built yet"
            if not why and (gone := [d for d in c.depends_on if d in planned and not planned[d].available]):
                why = f"its dependency {gone[0]} is unavailable"
            p = Planned(name, not why, why, http=_is_http(c))
            if p.available:
                old = old_ports.get(name) or {}
                if c.port and c.host_port:
                    p.port = pick(c.host_port, old.get("port"))
                p.extra_ports = {
                    extra: pick(c.extra_host_ports.get(extra), (old.get("extra_ports") or {}).get(extra))
                    for extra in c.extra_ports if extra in c.extra_host_ports
                }
            planned[name] = p
        return list(planned.values()), images

    def _record(self) -> dict[str, Any] | None:
        record = read_json(self.record_json)
        return record if isinstance(record, dict) else None

    # ---- up ----------------------------------------------------------------------

    def up(
        self,
        components: Sequence[str] = (),
        *,
        profile: str | None = None,
        keep_on_failure: bool = False,
        timeout: float = 120.0,
        progress: ProgressFn | None = None,
    ) -> SandboxStatus:
        engine = Engine()
        planned, images = self._plan(components, profile)
        run = [p.name for p in planned if p.available]
        wanted = {images[n].image for n in run}
        absent = missing({n: images[n] for n in run}, _tags(engine))
        if absent:
            raise EngineUnavailable(
                f"images missing from the engine: {', '.join(absent)} ({len(wanted)} needed)",
                hint="build them with `aether-sandbox images build --offline`" if self.offline
                else "pull them, or build the offline set with `aether-sandbox images build --offline`",
            )
        if progress:
            for warning in stale_project_images(self.spec, wanted, engine.get("/images/json"), offline=self.offline):
                progress("sandbox", f"warning: {warning}")
        self._write_project(planned, images)
        # Components of earlier `up`s stay in the record (shown as stopped once their containers are gone).
        earlier = [c for c in (self._record() or {}).get("components", []) if c["name"] not in {p.name for p in planned}]
        write_json(self.record_json, {
            "project": self.project, "offline": self.offline, "compose": describe(), "started": time.time(),
            "components": sorted(earlier + [asdict(p) for p in planned], key=lambda c: _spec_order(self.spec, c["name"])),
        })
        for p in planned:
            if not p.available and progress:
                progress(p.name, f"unavailable: {p.why_unavailable}")
        if not run:
            return self.status()
        log = self.directory / "compose-up.log"
        log.write_text("")
        proc = self._compose_up = self.compose().start("up", "--detach", "--no-build", *run, log=log)
        try:
            self._wait_healthy(engine, run, proc, log, timeout, progress, keep_on_failure)
        finally:
            if proc.poll() is None:
                proc.wait(timeout=30)
        self._verify_limits(engine, run, keep_on_failure)
        if progress:
            progress("sandbox", f"limits applied by the engine equal the spec for {len(run)} containers")
        return self.status()

    def _wait_healthy(self, engine: Engine, run: list[str], proc: Any, log: Path, timeout: float,
                      progress: ProgressFn | None, keep: bool) -> None:
        seen: dict[str, str] = {}
        # Container ID each service's CPU limit was applied to: compose may recreate a container that was
        # healthy when this `up` began (a new image, a changed file), and the new one starts unlimited.
        limited: dict[str, str] = {}
        deadline = time.monotonic() + timeout
        while True:
            by_service = {c["Labels"].get(SERVICE_LABEL): c for c in engine.containers(self.project)}
            healthy = 0
            for name in run:
                summary = by_service.get(name)
                event = progress_word(summary)
                if (summary and proc.poll() is None and summary.get("State") == "exited"
                        and summary.get("Status", "").startswith("Exited (0)")):
                    event = "recreating"  # compose stops a container (cleanly) before it replaces it
                if summary and limited.get(name) == summary["Id"] and event in ("unhealthy", "starting"):
                    # Healthy once in this `up`: a later flap is for `status` to show, as with the local runtime.
                    event = "running"
                if progress and seen.get(name) != event:
                    progress(name, event)
                seen[name] = event
                if event == "running":
                    healthy += 1
                    if limited.get(name) != summary["Id"]:
                        engine.set_cpu_limit(summary["Id"], budget_of(self.spec.component(name)).cpu_m.limit)
                        limited[name] = summary["Id"]
                elif summary and (event.startswith("crashed") or event == "unhealthy"):
                    self._fail(engine, name, summary, keep)
            code = proc.poll()
            if healthy == len(run) and code == 0:
                return  # compose has finished: no container is still to be recreated
            if code not in (None, 0):
                pending = [n for n in run if seen.get(n) != "running"]
                culprit = next((n for n in pending if n in by_service), pending[0] if pending else "compose")
                lines = _tail_file(log, 10)
                if culprit in by_service:
                    lines = engine.tail(by_service[culprit]["Id"]) + ["--- compose:"] + lines
                self._raise(ComponentFailed(culprit, f"compose up exited with status {code}", log_lines=lines,
                                            hint="see the log lines above"), keep)
            if time.monotonic() > deadline:
                pending = [n for n in run if seen.get(n) != "running"]
                name = pending[0] if pending else "sandbox"
                lines = engine.tail(by_service[name]["Id"]) if name in by_service else _tail_file(log, 10)
                self._raise(ComponentFailed(name, f"not healthy within {timeout:.0f} s ({seen.get(name, 'not created')})",
                                            log_lines=lines, hint="see the log lines above"), keep)
            time.sleep(POLL_S)

    def _fail(self, engine: Engine, name: str, summary: dict[str, Any], keep: bool) -> None:
        inspect = engine.inspect(summary["Id"])
        reason = self._exit_reason(engine, name, inspect) or progress_word(summary)
        self._raise(ComponentFailed(name, reason, log_lines=engine.tail(summary["Id"]),
                                    hint="see the log lines above; `aether-sandbox logs COMPONENT` shows more"), keep)

    def _raise(self, error: StartFailed, keep: bool) -> None:
        proc = self._compose_up
        if proc is not None and proc.poll() is None:
            proc.terminate()  # compose must not go on creating containers while they are taken down
            proc.wait(timeout=30)
        if not keep:
            self.down()
            error.hint = (error.hint + "; " if error.hint else "") + "everything started was stopped (--keep-on-failure keeps it)"
        raise error

    def _verify_limits(self, engine: Engine, run: list[str], keep: bool) -> None:
        """Fail loudly when the engine (or the kernel) holds a container to other limits than the spec's."""
        problems = []
        for summary in engine.containers(self.project):
            name = summary["Labels"].get(SERVICE_LABEL)
            if name not in run:
                continue
            budget = budget_of(self.spec.component(name))
            inspect = engine.inspect(summary["Id"])
            cpu, memory, reservation = applied_limits(inspect)
            kernel_cpu, kernel_memory = kernel_limits(summary["Id"])
            checks = [("CPU limit (engine)", cpu, budget.cpu_m.limit, "m"),
                      ("memory limit (engine)", memory, budget.memory_mib.limit, " MiB"),
                      ("memory reservation (engine)", reservation, budget.memory_mib.request, " MiB")]
            if kernel_memory is not None:
                checks += [("CPU quota (cgroup)", kernel_cpu, budget.cpu_m.limit, "m"),
                           ("memory limit (cgroup)", kernel_memory, budget.memory_mib.limit, " MiB")]
            for what, got, want, unit in checks:
                if got is None or abs(got - want) > 0.5:
                    problems.append(f"{name}: {what} is {'unset' if got is None else f'{got:g}{unit}'}, the spec says {want}{unit}")
        if problems:
            self._raise(LimitsNotApplied(
                f"the engine did not apply the spec's limits: {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                hint="use docker compose v2 or docker-compose 1.27+ (they honour cpus/mem_limit); " + "; ".join(problems[1:4]),
            ), keep)

    # ---- down --------------------------------------------------------------------

    def down(self, *, volumes: bool = False) -> None:
        anonymous = self._anonymous_volumes()
        if not self.env_file.exists() or not (self.directory / "compose" / gen.BASE_FILE).exists():
            self._down_without_files(volumes)
        else:
            result = self.compose(offline=False).run("down", "--remove-orphans", "--timeout", "10", *(["--volumes"] if volumes else []))
            if result.returncode != 0:
                raise NotRunning(f"compose down failed: {(result.stderr or result.stdout).strip().splitlines()[-1:]}")
        engine = Engine()
        for name in anonymous:
            engine.remove_volume(name)
        if volumes and self.state.root.exists():
            shutil.rmtree(self.state.root)

    def _anonymous_volumes(self) -> list[str]:
        """Volumes the images declare (``VOLUME``) and the compose file does not name: nothing keeps them after ``down``."""
        try:
            engine = Engine()
            return [
                mount["Name"]
                for summary in engine.containers(self.project)
                for mount in summary.get("Mounts") or []
                if mount.get("Type") == "volume" and not mount.get("Name", "").startswith(self.project + "_")
            ]
        except EngineUnavailable:
            return []

    def _down_without_files(self, volumes: bool) -> None:
        """``down`` when the state directory lost its files: render throwaway ones (values do not matter)."""
        try:
            if not Engine().containers(self.project) and not (volumes and Engine().volumes(self.project)):
                return
        except EngineUnavailable:
            return
        with tempfile.TemporaryDirectory(prefix="aether-down-") as tmp:
            gen.write(self.spec, Path(tmp))
            env = Path(tmp) / "compose.env"
            dummy = {gen.V_PG_PASSWORD: "x", gen.V_SECRETS_DIR: tmp, **{v: "x" for v in gen.CREDENTIAL_VARS.values()}}
            env.write_text("".join(f"{k}='{v}'\n" for k, v in dummy.items()))
            Compose(self.project, [Path(tmp) / gen.BASE_FILE], env).run(
                "down", "--remove-orphans", "--timeout", "10", *(["--volumes"] if volumes else []))

    # ---- status ------------------------------------------------------------------

    def status(self) -> SandboxStatus:
        record = self._record()
        if record is None:
            return SandboxStatus(self.state.name, self.name, False, [], ["never started"])
        engine = Engine()
        by_service = {c["Labels"].get(SERVICE_LABEL): c for c in engine.containers(self.project)}
        running = [s for s in by_service.values() if s["State"] == "running"]
        with ThreadPoolExecutor(max_workers=max(1, min(16, len(running)))) as pool:
            samples = dict(zip([s["Id"] for s in running], pool.map(lambda s: safe_stats(engine, s["Id"]), running)))
        components = []
        for p in record["components"]:
            components.append(self._component(engine, Planned(**p), by_service.get(p["name"]), samples))
        notes = [f"runtime: {record.get('compose', 'compose')}, project {self.project}",
                 "budgets enforced by the Docker engine (container CPU quota and memory limit)"]
        if record.get("offline"):
            notes += list(OFFLINE_NOTES)
        self._show_held(components)
        self._show_given_up(engine, components, by_service)
        up = any(c.state in ("running", "starting") for c in components)
        return SandboxStatus(self.state.name, self.name, up, components, notes)

    def _component(self, engine: Engine, p: Planned, summary: dict[str, Any] | None,
                   samples: dict[str, dict[str, Any] | None]) -> ComponentStatus:
        budget = budget_of(self.spec.component(p.name))
        usage = Usage(cpu_request_m=budget.cpu_m.request, cpu_limit_m=budget.cpu_m.limit,
                      memory_request_mib=budget.memory_mib.request, memory_limit_mib=budget.memory_mib.limit)
        if not p.available:
            return ComponentStatus(p.name, "unavailable", detail=p.why_unavailable, usage=usage)
        if summary is None:
            return ComponentStatus(p.name, "stopped", port=p.port, usage=usage)
        inspect = engine.inspect(summary["Id"])
        state = inspect["State"]
        health = (state.get("Health") or {}).get("Status", "unknown")
        cpu, memory, _ = applied_limits(inspect)
        usage.enforced = cpu is not None and memory is not None
        usage.enforcement = (f"docker: CPU {cpu:g}m, memory {memory:g} MiB applied by the engine" if usage.enforced
                             else "docker: the engine applied no CPU or memory limit")
        if (sample := samples.get(summary["Id"])) is not None:
            usage.cpu_m, usage.memory_mib = usage_now(sample)
        detail = self._exit_reason(engine, p.name, inspect) or ""
        status = state.get("Status")
        if status == "running":
            name = "running" if health in ("healthy", "unhealthy") else "starting"
            if detail:
                detail = f"restarted after: {detail}"
            elif health == "unhealthy":
                detail = health_output(state)
        elif status == "restarting":
            name = "crashed"
        elif status in ("exited", "dead"):
            name = "crashed" if detail else "stopped"
        else:
            name = "starting"
        return ComponentStatus(
            name=p.name, state=name, health=health if health in ("healthy", "unhealthy") else "unknown",
            port=p.port, pid=state.get("Pid") or None, url=f"http://127.0.0.1:{p.port}" if p.http and p.port else None,
            restarts=inspect.get("RestartCount", 0), detail=detail, usage=usage,
        )

    def _exit_reason(self, engine: Engine, name: str, inspect: dict[str, Any]) -> str | None:
        """Why the container died (or last died before a restart): the kernel's OOM kill, or its exit status."""
        state = inspect["State"]
        oom = state.get("OOMKilled")
        if not oom and inspect.get("RestartCount", 0) + (state.get("Status") in ("exited", "dead")) > 0:
            try:
                oom = engine.oom_events(inspect["Id"], epoch(inspect["Created"])) > 0
            except (LookupError, EngineUnavailable, ValueError):
                oom = False
        if oom:
            limit = budget_of(self.spec.component(name)).memory_mib.limit
            return f"killed by the kernel: memory limit of {limit} MiB exceeded (OOM)"
        if state.get("Status") in ("exited", "dead", "restarting") and state.get("ExitCode"):
            return f"exited with status {state['ExitCode']}" + (f": {state['Error']}" if state.get("Error") else "")
        return None

    # ---- logs, restart -----------------------------------------------------------

    def _container(self, component: str) -> dict[str, Any]:
        if component not in self.spec.names():
            raise NoSuchService(f"unknown component '{component}'", hint="`aether-sandbox spec` lists every component")
        for summary in Engine().containers(self.project):
            if summary["Labels"].get(SERVICE_LABEL) == component:
                return summary
        raise NoSuchService(f"{component} has no container in sandbox '{self.state.name}'", hint="is it up? see `aether-sandbox status`")

    def logs(self, component: str, *, tail: int = 100, follow: bool = False) -> Iterator[str]:
        summary = self._container(component)
        yield from Engine().logs(summary["Id"], tail=tail, follow=follow)

    def restart(self, component: str, timeout: float = 120.0) -> ComponentStatus:
        summary = self._container(component)
        result = self.compose().run("restart", "--timeout", "10", component)
        if result.returncode != 0:
            raise ComponentFailed(component, "compose restart failed", log_lines=(result.stderr or "").splitlines()[-10:])
        engine = Engine()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = engine.inspect(summary["Id"])["State"]
            if (state.get("Health") or {}).get("Status") == "healthy" and state.get("Status") == "running":
                break
            time.sleep(POLL_S)
        else:
            raise ComponentFailed(component, f"not healthy within {timeout:.0f} s of its restart", log_lines=engine.tail(summary["Id"]))
        return next(c for c in self.status().components if c.name == component)

    def kafka_relay(self, module: str) -> tuple[str, list[str]] | None:
        """How a host-side command streams from Kafka when the host cannot reach the broker.

        ``None`` with the official broker (the host uses the published port).  With the offline set's Tansu
        (it advertises only ``kafka:9092``): the bootstrap inside the network and an argv running
        ``python -m module`` in a one-off container of the project image on the sandbox's network
        (``docker run --rm``, no compose labels: ``status`` and ``down`` never see it).
        """
        if not self.offline:
            return None
        from sandbox.runtimes.docker.kafkacount import ONEOFF_LABEL

        engine = Engine()
        by_service = {c["Labels"].get(SERVICE_LABEL): c for c in engine.containers(self.project)}
        project = next((by_service[c.name] for c in self.spec.components if c.module and c.name in by_service), None)
        if "kafka" not in by_service or project is None:
            raise NoSuchService(f"sandbox '{self.state.name}' runs no kafka or project-image container",
                                hint="is it up? see `aether-sandbox status`")
        network = next(iter(engine.inspect(by_service["kafka"]["Id"])["NetworkSettings"]["Networks"]))
        image = engine.inspect(project["Id"])["Config"]["Image"]
        return (f"kafka:{self.spec.component('kafka').port}",
                ["docker", "run", "--rm", "-i", "--network", network, "--label", f"{ONEOFF_LABEL}=kafka-relay",
                 image, "python", "-m", module])

    # ---- stop, start, kill -------------------------------------------------------

    @property
    def held_json(self) -> Path:
        """Components held stopped by ``stop``, with when (``status`` shows them ``stopped``, not crashed)."""
        return self.directory / "held.json"

    def _held(self) -> dict[str, str]:
        held = read_json(self.held_json)
        return held if isinstance(held, dict) else {}

    def _show_held(self, components: list[ComponentStatus]) -> None:
        held = self._held()
        for c in components:
            if c.name in held and c.state in ("stopped", "crashed"):
                c.state, c.health, c.pid = "stopped", "unknown", None
                c.detail = stopped_detail(held[c.name])
        if running := [c.name for c in components if c.name in held and c.state in ("running", "starting")]:
            # started by other means (`restart`, compose): no longer held
            write_json(self.held_json, {k: v for k, v in held.items() if k not in running})

    def _show_given_up(self, engine: Engine, components: list[ComponentStatus], by_service: dict[str, Any]) -> None:
        """Say so when the engine will not restart a crashed container: it leaves a container ``exited``
        (not ``restarting``) only once its ``on-failure`` retries are spent."""
        for c in components:
            summary = by_service.get(c.name)
            if c.state != "crashed" or summary is None or summary.get("State") != "exited":
                continue
            policy = engine.inspect(summary["Id"])["HostConfig"].get("RestartPolicy") or {}
            if policy.get("Name") == "on-failure":
                c.detail += (f"; not restarted: the restart policy's {policy.get('MaximumRetryCount')} retries are spent"
                             " (`aether-sandbox restart` starts it)")

    def stop(self, component: str) -> ComponentStatus:
        """``compose stop``: the engine does not restart a container stopped by hand (its policy is on-failure)."""
        self._container(component)
        result = self.compose().run("stop", "--timeout", "10", component)
        if result.returncode != 0:
            raise ComponentFailed(component, "compose stop failed", log_lines=(result.stderr or "").splitlines()[-10:])
        write_json(self.held_json, {**self._held(), component: time.strftime("%H:%M:%S")})
        return next(c for c in self.status().components if c.name == component)

    def start(self, component: str, timeout: float = 120.0) -> ComponentStatus:
        """``compose start`` the component's (stopped) container and wait until the engine reports it healthy."""
        summary = self._container(component)
        result = self.compose().run("start", component)
        if result.returncode != 0:
            raise ComponentFailed(component, "compose start failed", log_lines=(result.stderr or "").splitlines()[-10:])
        held = self._held()
        if held.pop(component, None) is not None:
            write_json(self.held_json, held)
        self._wait_container_healthy(component, summary["Id"], timeout, "of its start")
        return next(c for c in self.status().components if c.name == component)

    def kill(self, component: str) -> int:
        """SIGKILL the container's main process from the host, as a crash: the engine's on-failure policy restarts it.

        (Killing through the engine API would mark the container stopped by hand, and nothing would restart
        it.)  Needs the right to signal the container's process (root, or the engine's user).
        """
        summary = self._container(component)
        state = Engine().inspect(summary["Id"])["State"]
        pid = state.get("Pid") or 0
        if state.get("Status") != "running" or not pid:
            raise NoSuchService(f"{component} is not running ({state.get('Status')})", hint="see `aether-sandbox status`")
        try:
            os.kill(pid, signal.SIGKILL)
        except PermissionError as exc:
            raise NoSuchService(f"cannot signal {component}'s process {pid} (owned by the engine's user)",
                                hint="run as root, or use `aether-sandbox restart`") from exc
        return pid

    def _wait_container_healthy(self, component: str, container: str, timeout: float, after: str) -> None:
        engine = Engine()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = engine.inspect(container)["State"]
            if (state.get("Health") or {}).get("Status") == "healthy" and state.get("Status") == "running":
                return
            time.sleep(POLL_S)
        raise ComponentFailed(component, f"not healthy within {timeout:.0f} s {after}", log_lines=engine.tail(container))


def _spec_order(spec: PlatformSpec, name: str) -> int:
    names = spec.names()
    return names.index(name) if name in names else len(names)


def _is_http(c: Component) -> bool:
    probe = c.readiness or c.liveness
    return probe is not None and probe.kind == "http"


def _tags(engine: Engine) -> set[str]:
    return {tag for image in engine.get("/images/json") for tag in (image.get("RepoTags") or [])}


def _tail_file(path: Path, lines: int) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []

