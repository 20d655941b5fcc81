"""The ``Runtime`` interface both runtimes implement, and what it reports.

Callers (the CLI, load tests, scenarios) see only this interface and its typed
errors; nothing outside ``sandbox/runtimes`` knows how components are run.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field

from sandbox.errors import EnvironmentProblem, InvalidInput, SandboxError, StartFailed


class EngineUnavailable(EnvironmentProblem):
    """No Docker engine answers (or its images are missing) for the docker runtime."""


class NoSuchService(InvalidInput):
    """A component name the spec does not know, or one that is not running."""


class PortInUse(EnvironmentProblem):
    """A port the runtime must use is taken."""


class NotRunning(SandboxError):
    """The sandbox is not up."""

    exit_code = 1


class ComponentFailed(StartFailed):
    """A component did not become healthy; carries its last log lines."""

    def __init__(self, component: str, reason: str, *, log_lines: Sequence[str] = (), hint: str = "") -> None:
        super().__init__(f"{component}: {reason}", hint=hint)
        self.component = component
        self.log_lines = list(log_lines)


@dataclass
class Usage:
    """Resource use of one component now, against its budget."""

    cpu_m: float | None = None
    """CPU used over the last sampling interval, in millicores."""
    memory_mib: float | None = None
    """Memory in use (cgroup usage or the process tree's RSS), in MiB."""
    cpu_request_m: int | None = None
    cpu_limit_m: int | None = None
    memory_request_mib: int | None = None
    memory_limit_mib: int | None = None
    enforced: bool = False
    """True when the kernel enforces the limits (cgroup, container); False when only measured."""
    enforcement: str = ""
    """How, or why not."""


@dataclass
class ComponentStatus:
    """One component as the runtime sees it."""

    name: str
    state: str
    """``running``, ``starting``, ``stopped``, ``failed``, ``crashed``, ``unavailable``."""
    health: str = "unknown"
    """``healthy``, ``unhealthy``, ``unknown``."""
    port: int | None = None
    pid: int | None = None
    url: str | None = None
    restarts: int = 0
    startup_s: float | None = None
    """Seconds from launch to healthy in its latest start."""
    detail: str = ""
    """Why it is in this state (exit reason, fallback in use, what is missing)."""
    usage: Usage = field(default_factory=Usage)


@dataclass
class SandboxStatus:
    """The whole sandbox."""

    name: str
    runtime: str
    up: bool
    components: list[ComponentStatus]
    notes: list[str] = field(default_factory=list)
    """Fallbacks and facts reported once (no TimescaleDB, budgets measured only, ...)."""

    def to_dict(self) -> dict:
        """A JSON-ready dictionary."""
        return asdict(self)


STOPPED_DETAIL = "stopped by `aether-sandbox stop`"
"""How the ``detail`` of a component held stopped by :meth:`Runtime.stop` begins (either runtime)."""


def stopped_detail(at: str) -> str:
    """The ``detail`` of a component held stopped since ``at`` (a wall-clock time)."""
    return f"{STOPPED_DETAIL} at {at}; `aether-sandbox start` brings it back"

ProgressFn = Callable[[str, str], None]
"""Called as ``progress(component, event)`` while ``up`` works."""


class Runtime(ABC):
    """Brings the platform up and down, and reports on it."""

    name: str

    @abstractmethod
    def up(
        self,
        components: Sequence[str] = (),
        *,
        profile: str | None = None,
        keep_on_failure: bool = False,
        timeout: float = 120.0,
        progress: ProgressFn | None = None,
    ) -> SandboxStatus:
        """Start ``components`` (and their dependencies), or a profile, or everything; wait until healthy."""

    @abstractmethod
    def down(self, *, volumes: bool = False) -> None:
        """Stop everything in reverse order; with ``volumes``, delete the data too."""

    @abstractmethod
    def status(self) -> SandboxStatus:
        """State, health, ports, PIDs and resource use of every component."""

    @abstractmethod
    def logs(self, component: str, *, tail: int = 100, follow: bool = False) -> Iterator[str]:
        """Log lines of ``component``."""

    @abstractmethod
    def restart(self, component: str) -> ComponentStatus:
        """Restart one component and wait until it is healthy again."""

    @abstractmethod
    def stop(self, component: str) -> ComponentStatus:
        """Stop one component and hold it stopped (no restarts) until :meth:`start`; ``status`` shows it ``stopped``."""

    @abstractmethod
    def start(self, component: str, timeout: float = 120.0) -> ComponentStatus:
        """Start a component held by :meth:`stop` again and wait until it is healthy."""

    @abstractmethod
    def kill(self, component: str) -> int:
        """SIGKILL one component's process, as a crash would; its restart policy brings it back.

        Returns the PID killed.  Callers wait on ``status`` for the restart.
        """

    def stats(self) -> list[ComponentStatus]:
        """Resource use of every running component (``status`` carries the same figures)."""
        return [c for c in self.status().components if c.state == "running"]
