"""Cron schedules and the scheduler's firing logic (a controlled clock, no servers)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from sandbox.spec.loader import default_spec
from sandbox.workflows.registry import BACKUP, WorkflowDef, workflows
from sandbox.workflows.schedule import Cron, CronError
from sandbox.workflows.scheduler.loop import Scheduler

T0 = datetime(2026, 7, 7, 23, 7, 30, tzinfo=UTC)  # a Tuesday


@pytest.mark.parametrize(("expr", "after", "expected"), [
    ("*/15 * * * *", T0, datetime(2026, 7, 7, 23, 15, tzinfo=UTC)),
    ("*/15 * * * *", datetime(2026, 7, 7, 23, 15, tzinfo=UTC), datetime(2026, 7, 7, 23, 30, tzinfo=UTC)),
    ("0 2 * * *", T0, datetime(2026, 7, 8, 2, 0, tzinfo=UTC)),
    ("0 1 * * *", datetime(2026, 12, 31, 1, 0, tzinfo=UTC), datetime(2027, 1, 1, 1, 0, tzinfo=UTC)),
    ("30 6 * * 1-5", datetime(2026, 7, 10, 7, 0, tzinfo=UTC), datetime(2026, 7, 13, 6, 30, tzinfo=UTC)),  # Fri -> Mon
    ("0 0 29 2 *", T0, datetime(2028, 2, 29, 0, 0, tzinfo=UTC)),
    ("0 12 1 * 0", T0, datetime(2026, 7, 12, 12, 0, tzinfo=UTC)),  # both day fields: either matches (Sunday 12th)
    ("5,10-12 3 * * 7", T0, datetime(2026, 7, 12, 3, 5, tzinfo=UTC)),  # 7 is Sunday too
])
def test_next_after(expr: str, after: datetime, expected: datetime) -> None:
    assert Cron.parse(expr).next_after(after) == expected


@pytest.mark.parametrize("expr", ["* * * *", "60 * * * *", "*/0 * * * *", "a * * * *", "5-1 * * * *", "* * 32 * *"])
def test_invalid_expressions_are_refused(expr: str) -> None:
    with pytest.raises(CronError):
        Cron.parse(expr)


def test_the_spec_schedules_every_workflow_and_the_backup() -> None:
    spec = default_spec()
    defs = {d.name: d for d in workflows(spec)}
    assert set(defs) == {w.name for w in spec.workflows} | {BACKUP}
    assert defs[BACKUP].schedule == spec.component("timescaledb").backup.schedule
    for d in defs.values():
        Cron.parse(d.schedule)  # every schedule of the spec parses
        assert callable(d.function())


def test_scheduler_fires_each_workflow_at_its_times_and_moves_on() -> None:
    now = [T0]
    fired: list[tuple[str, str, datetime]] = []
    done = threading.Event()

    def run(defn: WorkflowDef, trigger: str) -> None:
        fired.append((defn.name, trigger, now[0]))
        done.set()

    defs = [WorkflowDef("quarter", "*/15 * * * *", "intra-day", ""), WorkflowDef("nightly", "0 2 * * *", "nightly", "")]
    scheduler = Scheduler(defs, run, now=lambda: now[0])
    scheduler.plan()
    assert scheduler.due() == []
    now[0] = datetime(2026, 7, 7, 23, 15, 0, 500, tzinfo=UTC)
    assert [d.name for d in scheduler.due()] == ["quarter"]
    assert scheduler.due() == []  # fired once per time
    assert scheduler.next_runs["quarter"] == datetime(2026, 7, 7, 23, 30, tzinfo=UTC)
    now[0] = datetime(2026, 7, 8, 2, 0, 1, tzinfo=UTC)  # both are late: each fires once, not once per missed slot
    assert sorted(d.name for d in scheduler.due()) == ["nightly", "quarter"]
    assert scheduler.next_runs["nightly"] == datetime(2026, 7, 9, 2, 0, tzinfo=UTC)

    thread = scheduler.launch(defs[1], "schedule")
    thread.join(5)
    assert done.is_set() and fired == [("nightly", "schedule", now[0])]


def test_scheduler_loop_runs_due_workflows_in_threads() -> None:
    start = datetime.now(UTC)
    offset = [timedelta(0)]
    ran = threading.Event()
    scheduler = Scheduler([WorkflowDef("every-minute", "* * * * *", "intra-day", "")], lambda d, t: ran.set(),
                          now=lambda: start + offset[0], max_wait_s=0.1)
    scheduler.start()
    try:
        assert not ran.wait(0.3)
        offset[0] = timedelta(minutes=1)  # the clock reaches the next minute
        assert ran.wait(5)
    finally:
        scheduler.stop()
