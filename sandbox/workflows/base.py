"""What every workflow returns, and the errors it raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sandbox.errors import CheckFailed, SandboxError


class WorkflowFailed(CheckFailed):
    """A workflow run failed (its history row says why)."""


class WorkflowBusy(SandboxError):
    """The workflow is already running (in the scheduler or another CLI)."""

    exit_code = 1


@dataclass
class WorkflowResult:
    """The outcome of one workflow run, as recorded in the run history."""

    outcome: str = "ok"
    """``ok``, ``partial`` (some items failed; see ``detail.failures``) or ``failed``."""
    records: int = 0
    """Records processed: rows written (mirror, import), report rows, databases dumped."""
    detail: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(self)
