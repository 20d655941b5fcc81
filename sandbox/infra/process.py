"""A server process we start, watch and stop: the base of every embedded server.

Rules every subclass inherits:

* the process runs in its own session and process group (so a stop can sweep
  the workers it forked, e.g. PostgreSQL backends, and a Ctrl-C in the
  terminal does not reach it before we decide to stop it);
* stdout and stderr go to ``<data_dir>/<name>.log``;
* start checks the binary and the ports first, then launches, then polls a
  readiness check; if anything fails the process is stopped before the error
  propagates, so a failed start leaves neither a process nor a port behind;
* stop signals the PID (the server's own graceful signal), escalates to SIGKILL
  for the group and every descendant after a timeout, and reaps the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Self

from sandbox.infra.errors import InfraStartError
from sandbox.infra.ports import LOOPBACK, ensure_ports_free
from sandbox.infra.procstats import MemoryUsage, kill_surviving, process_tree, tree_listens_on, tree_memory
from sandbox.infra.wait import wait_until

log = logging.getLogger(__name__)

# How servers word a failed bind in their logs (PostgreSQL, redis, NATS, Tansu).
_ADDRESS_IN_USE = re.compile(r"address (already )?in use|AddrInUse", re.IGNORECASE)

#: How many log lines an error carries.
LOG_TAIL_LINES = 20


class ManagedServer(ABC):
    """A server binary run as a child process with a data directory, a log and ports.

    Subclasses provide :meth:`command`, :attr:`ports` and :meth:`ready`, and may
    override :meth:`prepare` (one-off setup such as ``initdb``) and
    :meth:`popen_options` (e.g. to drop privileges).
    """

    #: Short name: used for the log file, the PID file and messages.
    name: ClassVar[str]
    #: The signal that asks this server for a clean shutdown.
    stop_signal: ClassVar[signal.Signals] = signal.SIGTERM
    #: Seconds between readiness polls; servers here start in milliseconds.
    poll_interval: ClassVar[float] = 0.02

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        #: Seconds from launch to ready in the last successful start.
        self.startup_seconds: float | None = None

    # ---- what a subclass defines -------------------------------------------------

    @property
    @abstractmethod
    def ports(self) -> dict[str, int]:
        """The loopback ports this server listens on, by role (e.g. ``{"client": 4222}``)."""

    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the server in the foreground."""

    @abstractmethod
    def ready(self) -> bool | str:
        """Probe the running server: True when it serves clients, else False or why not."""

    def prepare(self) -> None:  # noqa: B027 - optional hook, deliberately empty
        """One-off setup before launch (create directories, initialise storage)."""

    def popen_options(self) -> dict[str, Any]:
        """Extra :class:`subprocess.Popen` keyword arguments (user, group, env)."""
        return {}

    # ---- facts -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address every port is bound to: always loopback."""
        return LOOPBACK

    @property
    def log_path(self) -> Path:
        """The file that receives the server's stdout and stderr."""
        return self.data_dir / f"{self.name}.log"

    @property
    def pid_path(self) -> Path:
        """A file holding the PID while the server runs (for tools that did not start it)."""
        return self.data_dir / f"{self.name}.pid"

    @property
    def pid(self) -> int | None:
        """PID of the process we started, until :meth:`stop` reaps it (also after a crash); else None."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """True while the process we started has not exited."""
        return self._proc is not None and not self._has_exited()

    @property
    def exit_status(self) -> int | None:
        """Exit status once the process has exited (negative: killed by that signal), else None.

        Readable before :meth:`stop` reaps the process, e.g. by a supervisor
        that noticed a crash and wants to report how the server ended.
        """
        if self._proc is None or not self._has_exited():
            return None
        return self._exit_code()

    def memory(self) -> MemoryUsage | None:
        """Memory of the server and its worker processes, or None when it is not running."""
        if self._proc is None or not self.is_running():
            return None
        return tree_memory(self._proc.pid)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last ``lines`` lines the server logged since its latest launch."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                text = handle.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return []
        return text.splitlines()[-lines:]

    # ---- lifecycle ---------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until :meth:`ready`; a no-op when already running.

        Raises :class:`~sandbox.infra.errors.PortInUse` or ``BinaryMissing``
        before launching anything, :class:`InfraStartError` when the process
        exits or setup fails, :class:`ReadinessTimeout` when it does not become
        ready in ``start_timeout``. In every failure the process is gone when
        the error reaches the caller.
        """
        if self.is_running():
            return self
        ensure_ports_free(self.ports, what=self.name)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.prepare()
            self._launch()
            self.startup_seconds = wait_until(
                self._ready_unless_exited,
                timeout=self.start_timeout,
                interval=self.poll_interval,
                what=f"{self.name} on {self.host}:{self._main_port()}",
                log_tail=self.log_tail,
                log_path=self.log_path,
            )
        except BaseException:
            # Cleanup on every failure, KeyboardInterrupt included.
            self.stop()
            raise
        log.info("%s ready on %s (pid %s) in %.2fs", self.name, self.ports, self.pid, self.startup_seconds)
        return self

    def stop(self) -> None:
        """Stop the server: graceful signal to the PID, SIGKILL after ``stop_timeout``.

        Idempotent. Returns once the process is reaped. On escalation the kill
        reaches the process group and every descendant (PostgreSQL workers sit
        in groups of their own).
        """
        proc = self._proc
        if proc is None:
            return
        try:
            if not self._has_exited():
                self._signal(proc.pid, self.stop_signal)
                if not self._wait_exited(self.stop_timeout):
                    log.warning("%s (pid %s) ignored %s; killing it", self.name, proc.pid, self.stop_signal.name)
                    # Snapshot the tree first: once the leader dies its workers
                    # are re-parented and can no longer be found from it.
                    workers = process_tree(proc.pid)
                    self._signal_group(proc.pid, signal.SIGKILL)
                    survivors = kill_surviving(workers)
                    if survivors:
                        log.error("%s: processes %s survived SIGKILL", self.name, [p.pid for p in survivors])
                    self._wait_exited(5.0)
            if hasattr(os, "waitid"):
                # The leader has exited but is not reaped yet, so its PID (= the
                # group id) cannot have been reused: sweeping the group is safe
                # and catches workers a crash left behind.
                self._signal_group(proc.pid, signal.SIGKILL)
        finally:
            proc.wait()
            self._proc = None
            self.pid_path.unlink(missing_ok=True)
            log.info("%s stopped (pid %s, exit %s)", self.name, proc.pid, proc.returncode)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running() else "stopped"
        return f"{type(self).__name__}({self.data_dir}, ports={self.ports}, {state})"

    # ---- internals ---------------------------------------------------------------

    def _main_port(self) -> int:
        return next(iter(self.ports.values()))

    def _launch(self) -> None:
        argv = self.command()
        with self.log_path.open("ab") as log_file:
            log_file.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%S')} starting: {' '.join(argv)}\n".encode())
            log_file.flush()
            self._log_offset = log_file.tell()
            # The child gets its own copy of the descriptor; ours closes on exit.
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                start_new_session=True,
                **self.popen_options(),
            )
        self.pid_path.write_text(f"{self._proc.pid}\n")

    def _ready_unless_exited(self) -> bool | str:
        if self._has_exited():
            code = self._exit_code()
            lines = self.log_tail()
            hint = ""
            if any(_ADDRESS_IN_USE.search(line) for line in lines):
                # The ports were free when start() checked them: someone took one since.
                hint = f"another process took one of the ports {sorted(self.ports.values())}; retry or pick other ports"
            raise InfraStartError(
                f"{self.name} exited during start-up (exit status {code})",
                log_lines=lines,
                log_path=self.log_path,
                hint=hint,
            )
        result = self.ready()
        assert self._proc is not None
        # A stranger that took a port after the pre-launch check could answer
        # the probe while our server is failing to bind: only our own listener
        # counts. Checked after the probe, once, because reading the socket
        # table costs ~10 ms, more than the servers take to start.
        if result is True and tree_listens_on(self._proc.pid, list(self.ports.values())) is False:
            return f"something other than pid {self._proc.pid} answers on {sorted(self.ports.values())}"
        return result

    def _has_exited(self) -> bool:
        """True once the process has exited; does not reap it (see :meth:`stop`)."""
        assert self._proc is not None
        if self._proc.returncode is not None:
            return True
        if hasattr(os, "waitid"):
            try:
                info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return True
            return info is not None
        return self._proc.poll() is not None  # platforms without waitid: reaps

    def _exit_code(self) -> int | None:
        assert self._proc is not None
        if self._proc.returncode is not None or not hasattr(os, "waitid"):
            return self._proc.returncode
        info = os.waitid(os.P_PID, self._proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if info is None:
            return None
        return info.si_status if info.si_code == os.CLD_EXITED else -info.si_status

    def _wait_exited(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self._has_exited():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    @staticmethod
    def _signal(pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    @staticmethod
    def _signal_group(pgid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)


class HttpServer(ManagedServer):
    """A managed server answering HTTP on one loopback port, ready when ``GET health_path`` answers 200."""

    health_path: str = "/healthz"

    def __init__(self, data_dir: Path, port: int, **kwargs: Any) -> None:
        super().__init__(data_dir, **kwargs)
        self.port = port

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.port}

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://{self.host}:{self.port}"

    def ready(self) -> bool | str:
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=2) as response:  # noqa: S310 - loopback
                return response.status == 200 or f"{self.health_path} answered {response.status}"
        except urllib.error.HTTPError as exc:
            return f"{self.health_path} answered {exc.code}"
        except OSError as exc:
            return f"{self.health_path}: {exc}"


class PythonModuleServer(HttpServer):
    """``python -m MODULE`` with its environment, ready when ``GET health_path`` answers 200.

    The sandbox's own components run this way in the local runtime, and the
    replay harness starts the venue feed and the ingest the same way.
    ``preexec`` runs in the child before ``exec`` (e.g. joining a cgroup, so a
    memory limit holds from the first instruction).
    """

    name: ClassVar[str] = "component"

    def __init__(
        self, data_dir: Path, name: str, module: str, port: int, env: dict[str, str], *, health_path: str = "/healthz",
        preexec: Any = None, **kwargs: Any,
    ) -> None:
        super().__init__(data_dir, port, **kwargs)
        self.health_path = health_path
        self.name = name  # type: ignore[misc] - per instance: logs and PID files carry the component's name
        self.module = module
        self.env = dict(env)
        self.preexec = preexec

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def popen_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"env": self.env}
        if self.preexec is not None:
            options["preexec_fn"] = self.preexec
        return options
