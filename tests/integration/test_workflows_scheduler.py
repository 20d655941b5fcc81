"""The workflow-scheduler process: its HTTP API runs workflows and serves their history and metrics."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.ports import free_port
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def scheduler(postgres: EmbeddedPostgres, kafka_broker: EmbeddedKafka, tmp_path: Path) -> Iterator[str]:
    """``python -m sandbox.workflows.scheduler`` on fresh databases (the schedule loop on), stopped by PID."""
    tag = uuid.uuid4().hex[:8]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WORKFLOWS_", "AETHER_"))}
    env.update(
        AETHER_HOST="127.0.0.1", AETHER_PORT=str(port),
        WORKFLOWS_WORKFLOWS_DATABASE_URL=postgres.dsn(f"wf_{tag}"), WORKFLOWS_MARKETDATA_DATABASE_URL=postgres.dsn(f"md_{tag}"),
        WORKFLOWS_KAFKA_BOOTSTRAP=kafka_broker.bootstrap, WORKFLOWS_TOPIC_PREFIX=f"s{tag}", WORKFLOWS_MIRROR_IDLE_S="0.5",
    )
    log = tmp_path / "scheduler.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sandbox.workflows.scheduler"], env=env, cwd=tmp_path,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool | str:
        if proc.poll() is not None:
            raise RuntimeError("scheduler exited:\n" + log.read_text())
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError as exc:
            return str(exc)

    try:
        wait_until(ready, timeout=30, interval=0.1, what="workflow-scheduler", log_tail=lambda: log.read_text().splitlines()[-20:])
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(15)


def test_runs_on_demand_and_reports_history_and_metrics(scheduler: str, kafka_broker: EmbeddedKafka, tmp_path: Path) -> None:
    workflows = httpx.get(scheduler + "/workflows").json()
    assert {w["name"] for w in workflows} == {"kraken-stream-mirror", "coingecko-import", "report-generation", "timescaledb-backup"}
    assert all(w["next_run"] for w in workflows)  # the schedule loop planned every workflow

    done = httpx.post(scheduler + "/runs/kraken-stream-mirror", params={"wait": "true"}, timeout=60)
    assert done.status_code == 202 and done.json()["outcome"] == "ok" and done.json()["trigger"] == "api"

    accepted = httpx.post(scheduler + "/runs/report-generation")
    assert accepted.status_code == 202 and accepted.json() == {"workflow": "report-generation", "accepted": True}
    wait_until(lambda: any(r["workflow"] == "report-generation" and r["outcome"] == "ok" for r in httpx.get(scheduler + "/runs").json()),
               timeout=30, interval=0.2, what="the report run in the history")
    report = next(r for r in httpx.get(scheduler + "/runs", params={"workflow": "report-generation"}).json())
    assert Path(report["detail"]["html"]).parent == tmp_path / "reports"  # relative to the scheduler's working directory

    failed = httpx.post(scheduler + "/runs/coingecko-import", params={"wait": "true"}, timeout=60).json()
    assert failed["outcome"] == "failed" and "WORKFLOWS_COINGECKO_URL" in failed["error"]  # recorded, not a 500

    assert httpx.post(scheduler + "/runs/nope").status_code == 404
    runs = httpx.get(scheduler + "/runs", params={"limit": 10}).json()
    assert [r["workflow"] for r in runs] == ["coingecko-import", "report-generation", "kraken-stream-mirror"]
    assert all(r["finished_at"] and r["duration_s"] is not None for r in runs)

    metrics = httpx.get(scheduler + "/metrics").text
    assert 'workflow_runs_total{outcome="ok",trigger="api",workflow="kraken-stream-mirror"} 1.0' in metrics
    assert 'workflow_runs_total{outcome="failed",trigger="api",workflow="coingecko-import"} 1.0' in metrics
