"""The scheduler's HTTP API and lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import Response

from sandbox.workflows import history, runner
from sandbox.workflows.base import WorkflowBusy
from sandbox.workflows.registry import WorkflowDef, workflows
from sandbox.workflows.scheduler.loop import Scheduler
from sandbox.workflows.settings import WorkflowSettings

log = logging.getLogger("sandbox.workflows.scheduler")


def create_app(settings: WorkflowSettings, *, schedule: bool = True, spec: Any = None) -> FastAPI:
    """The scheduler app; with ``schedule`` its loop runs while the app is up."""
    import psycopg
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    from sandbox.spec.loader import default_spec

    defs = workflows(spec or default_spec())
    by_name = {d.name: d for d in defs}
    registry = CollectorRegistry()
    runs_total = Counter("workflow_runs_total", "Finished runs by workflow, trigger and outcome.", ["workflow", "trigger", "outcome"], registry=registry)
    duration = Histogram("workflow_run_duration_seconds", "Run durations.", ["workflow"], registry=registry,
                         buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800))
    records = Counter("workflow_records_total", "Records processed by workflow.", ["workflow"], registry=registry)
    running = Gauge("workflow_running", "Runs in progress by workflow.", ["workflow"], registry=registry)
    last_ok = Gauge("workflow_last_success_timestamp_seconds", "End of the latest successful run.", ["workflow"], registry=registry)

    def run(defn: WorkflowDef, trigger: str) -> dict[str, Any]:
        running.labels(defn.name).inc()
        started = time.monotonic()
        try:
            row = runner.run(defn, settings, trigger)
        finally:
            running.labels(defn.name).dec()
        duration.labels(defn.name).observe(time.monotonic() - started)
        runs_total.labels(defn.name, trigger, row["outcome"]).inc()
        records.labels(defn.name).inc(row["records"])
        if row["outcome"] == "ok":
            last_ok.labels(defn.name).set(time.time())
        return row

    scheduler = Scheduler(defs, run)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(runner.ensure_databases, settings)
        with psycopg.connect(settings.workflows_database_url, connect_timeout=10) as conn:
            history.ensure_history(conn)
        if schedule:
            scheduler.start()
        yield
        scheduler.stop()

    app = FastAPI(title="workflow-scheduler", version="0.1", lifespan=lifespan)
    app.state.scheduler = scheduler

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "scheduling": schedule}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.get("/workflows")
    def list_workflows() -> list[dict[str, Any]]:
        return [{"name": d.name, "schedule": d.schedule, "cadence": d.cadence, "description": d.description,
                 "next_run": scheduler.next_runs[d.name].isoformat() if d.name in scheduler.next_runs else None} for d in defs]

    @app.get("/runs")
    def get_runs(workflow: str | None = None, limit: int = Query(20, ge=1, le=1000)) -> list[dict[str, Any]]:
        with psycopg.connect(settings.workflows_database_url, connect_timeout=10) as conn:
            return history.runs(conn, workflow, limit)

    @app.post("/runs/{name}", status_code=202)
    async def post_run(name: str, wait: bool = False) -> dict[str, Any]:
        """Start a run now (``wait=true``: answer with the finished run, 200)."""
        defn = by_name.get(name)
        if defn is None:
            raise HTTPException(404, f"unknown workflow {name!r}; known: {', '.join(by_name)}")
        if wait:
            try:
                return await asyncio.to_thread(run, defn, "api")
            except WorkflowBusy as exc:
                raise HTTPException(409, str(exc)) from exc
        scheduler.launch(defn, "api")
        return {"workflow": name, "accepted": True}

    return app
