"""The schedule loop: fires each workflow at its cron times, one thread per run."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sandbox.workflows.base import WorkflowBusy
from sandbox.workflows.registry import WorkflowDef
from sandbox.workflows.schedule import Cron

log = logging.getLogger("sandbox.workflows.scheduler")


class Scheduler:
    """Computes each workflow's next firing time and starts ``run(defn, trigger)`` in a thread when it comes.

    A firing that finds the workflow still running (the runner's lock) is skipped
    and logged: runs never pile up.
    """

    def __init__(self, defs: list[WorkflowDef], run: Callable[[WorkflowDef, str], Any],
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), max_wait_s: float = 30.0) -> None:
        self.defs = defs
        self.crons = {d.name: Cron.parse(d.schedule) for d in defs}
        self._run = run
        self._now = now
        self.max_wait_s = max_wait_s
        """The longest sleep between two looks at the clock (it may jump)."""
        self.next_runs: dict[str, datetime] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.threads: list[threading.Thread] = []

    def plan(self) -> None:
        """(Re)compute every next firing time from now."""
        now = self._now()
        self.next_runs = {d.name: self.crons[d.name].next_after(now) for d in self.defs}

    def due(self) -> list[WorkflowDef]:
        """The workflows whose time has come; their next time moves on."""
        now = self._now()
        fired = []
        for d in self.defs:
            if self.next_runs[d.name] <= now:
                fired.append(d)
                self.next_runs[d.name] = self.crons[d.name].next_after(now)
        return fired

    def start(self) -> None:
        """Start the loop thread."""
        self.plan()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop (runs in progress finish on their own threads)."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)

    def launch(self, defn: WorkflowDef, trigger: str) -> threading.Thread:
        """Run ``defn`` in a new thread."""
        def target() -> None:
            try:
                self._run(defn, trigger)
            except WorkflowBusy:
                log.warning("%s: still running, this firing is skipped", defn.name)
            except Exception:  # noqa: BLE001 - a broken run must not stop the schedule
                log.exception("%s: run failed to start", defn.name)

        thread = threading.Thread(target=target, name=f"run-{defn.name}", daemon=True)
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()
        return thread

    def _loop(self) -> None:
        while not self._stop.is_set():
            for defn in self.due():
                log.info("%s: scheduled run", defn.name)
                self.launch(defn, "schedule")
            wait = min((t - self._now()).total_seconds() for t in self.next_runs.values()) if self.next_runs else 60
            self._stop.wait(min(max(wait, 0.05), self.max_wait_s))
