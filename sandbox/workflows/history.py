"""Run history in the ``workflows`` database: one row per run (start, end, outcome, records, error)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sandbox.workflows.base import WorkflowResult

HISTORY_DDL = (
    """CREATE TABLE IF NOT EXISTS workflow_runs (
        id          bigserial   PRIMARY KEY,
        workflow    text        NOT NULL,
        trigger     text        NOT NULL CHECK (trigger IN ('schedule', 'api', 'cli')),
        started_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
        finished_at timestamptz,
        outcome     text        NOT NULL CHECK (outcome IN ('running', 'ok', 'partial', 'failed')),
        records     bigint      NOT NULL DEFAULT 0,
        error       text,
        detail      jsonb       NOT NULL DEFAULT '{}'::jsonb
    )""",
    "CREATE INDEX IF NOT EXISTS workflow_runs_workflow_id ON workflow_runs (workflow, id DESC)",
)

COLUMNS = ("id", "workflow", "trigger", "started_at", "finished_at", "outcome", "records", "error", "detail")


def ensure_history(conn: Any) -> None:
    """Create the history table if missing (psycopg 3 connection; commits)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('aether.workflows.schema'))")
        for statement in HISTORY_DDL:
            conn.execute(statement)


def start_run(conn: Any, workflow: str, trigger: str) -> int:
    """Record a run as ``running``; its id."""
    row = conn.execute(
        "INSERT INTO workflow_runs (workflow, trigger, outcome) VALUES (%s, %s, 'running') RETURNING id",
        (workflow, trigger),
    ).fetchone()
    conn.commit()
    return int(row[0])


def finish_run(conn: Any, run_id: int, result: WorkflowResult) -> None:
    """Record a run's end."""
    conn.execute(
        "UPDATE workflow_runs SET finished_at = clock_timestamp(), outcome = %s, records = %s, error = %s, detail = %s "
        "WHERE id = %s",
        (result.outcome, result.records, result.error, json.dumps(result.detail, default=str), run_id),
    )
    conn.commit()


def runs(conn: Any, workflow: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first (of one workflow, or all)."""
    where, args = ("WHERE workflow = %s", [workflow]) if workflow else ("", [])
    rows = conn.execute(
        f"SELECT {', '.join(COLUMNS)} FROM workflow_runs {where} ORDER BY id DESC LIMIT %s",  # noqa: S608 - fixed columns
        (*args, limit),
    ).fetchall()
    return [_row(r) for r in rows]


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    out = dict(zip(COLUMNS, row, strict=True))
    for key in ("started_at", "finished_at"):
        if isinstance(out[key], datetime):
            out[key] = out[key].isoformat()
    if out["started_at"] and out["finished_at"]:
        out["duration_s"] = round((datetime.fromisoformat(out["finished_at"]) - datetime.fromisoformat(out["started_at"])).total_seconds(), 3)
    else:
        out["duration_s"] = None
    return out
