"""The workflows the scheduler knows: the spec's ``workflows`` plus the TimescaleDB backup job.

Each is a function ``(settings, progress) -> WorkflowResult`` imported when it
runs (the mirror needs confluent-kafka, the report nothing of the kind).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from sandbox.errors import InvalidInput
from sandbox.spec.models import PlatformSpec
from sandbox.workflows.base import WorkflowResult
from sandbox.workflows.settings import WorkflowSettings

#: The backup job's name (its schedule is the spec's ``timescaledb.backup.schedule``).
BACKUP = "timescaledb-backup"

#: Where each workflow's code lives: ``module:function``.
IMPLEMENTATIONS = {
    "kraken-stream-mirror": "sandbox.workflows.mirror:mirror",
    "coingecko-import": "sandbox.workflows.coingecko:import_markets",
    "report-generation": "sandbox.workflows.report:generate",
    BACKUP: "sandbox.workflows.backup:scheduled_backup",
}

WorkflowFn = Callable[[WorkflowSettings, Callable[[str], None] | None], WorkflowResult]


@dataclass(frozen=True)
class WorkflowDef:
    """One workflow: its name, cron schedule, cadence and description (from the spec)."""

    name: str
    schedule: str
    cadence: str
    description: str

    def function(self) -> WorkflowFn:
        """The workflow's implementation."""
        module, _, attr = IMPLEMENTATIONS[self.name].partition(":")
        return getattr(importlib.import_module(module), attr)  # type: ignore[no-any-return]


def workflows(spec: PlatformSpec) -> list[WorkflowDef]:
    """Every workflow of the spec, then the backup job where the spec documents one."""
    defs = [WorkflowDef(w.name, w.schedule, w.cadence, w.description) for w in spec.workflows if w.name in IMPLEMENTATIONS]
    ts = next((c for c in spec.components if c.name == "timescaledb"), None)
    if ts is not None and ts.backup is not None:
        defs.append(WorkflowDef(BACKUP, ts.backup.schedule, ts.backup.cadence or "nightly", "pg_dump of every platform database into the backup directory"))
    return defs


def lookup(spec: PlatformSpec, name: str) -> WorkflowDef:
    """The workflow called ``name``; :class:`InvalidInput` naming the known ones otherwise."""
    for w in workflows(spec):
        if w.name == name:
            return w
    known = ", ".join(w.name for w in workflows(spec))
    raise InvalidInput(f"unknown workflow '{name}'", hint=f"workflows: {known}")
