"""Running one workflow: at most one run per workflow at a time, recorded in the run history.

Used by the scheduler (on schedule and ``POST /runs/{name}``) and by
``aether-sandbox workflow run``; both take the same PostgreSQL advisory lock
per workflow, so a scheduled run and a manual one never overlap.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sandbox.workflows import history
from sandbox.workflows.base import WorkflowBusy, WorkflowResult
from sandbox.workflows.marketdata import DATABASE as MARKETDATA
from sandbox.workflows.registry import WorkflowDef
from sandbox.workflows.settings import WorkflowSettings

log = logging.getLogger("sandbox.workflows.runner")

WORKFLOWS_DATABASE = "workflows"


def _dbname(url: str, default: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    return str(conninfo_to_dict(url).get("dbname") or default)


def ensure_databases(settings: WorkflowSettings, which: tuple[str, ...] = (WORKFLOWS_DATABASE, MARKETDATA)) -> None:
    """Create the workflows' databases (``workflows``, ``marketdata``: the ones the settings name) where the platform did not.

    A sandbox started without the scheduler has neither.
    """
    import psycopg
    from psycopg import errors, sql

    urls = {WORKFLOWS_DATABASE: settings.workflows_database_url, MARKETDATA: settings.marketdata_database_url}
    names = [_dbname(urls[w], w) for w in which]

    with psycopg.connect(settings.postgres_url, autocommit=True, connect_timeout=10) as conn:
        existing = {r[0] for r in conn.execute("SELECT datname FROM pg_database").fetchall()}
        for name in names:
            if name not in existing:
                try:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
                except errors.DuplicateDatabase:
                    pass  # created concurrently


def run(defn: WorkflowDef, settings: WorkflowSettings, trigger: str,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run ``defn`` now and return its history row; :class:`WorkflowBusy` when it is already running.

    A workflow raising is recorded as ``failed`` with the error (the run row is
    returned, not the exception: the caller decides how to report it).
    """
    import psycopg

    ensure_databases(settings)
    with psycopg.connect(settings.workflows_database_url, connect_timeout=10) as conn:
        history.ensure_history(conn)
        got = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (f"aether.workflow.{defn.name}",)).fetchone()
        conn.commit()
        if not got or not got[0]:
            raise WorkflowBusy(f"workflow {defn.name} is already running", hint="`aether-sandbox workflow history` shows it")
        run_id = history.start_run(conn, defn.name, trigger)
        started = time.monotonic()
        try:
            result = defn.function()(settings, progress)
        except Exception as exc:  # noqa: BLE001 - recorded in the history, reported by the caller
            log.exception("workflow %s failed", defn.name)
            result = WorkflowResult(outcome="failed", error=f"{type(exc).__name__}: {exc}")
        log.info("workflow %s %s in %.1f s: %s records", defn.name, result.outcome, time.monotonic() - started, result.records)
        history.finish_run(conn, run_id, result)
        conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"aether.workflow.{defn.name}",))
        conn.commit()
        return next(r for r in history.runs(conn, defn.name, limit=5) if r["id"] == run_id)
