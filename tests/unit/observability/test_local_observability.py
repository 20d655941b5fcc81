"""The local runtime's observability: the plan (what runs, what is unavailable and why), the Prometheus
configuration generated from it (checked by promtool), the sandbox exporter, and the OTEL_* pass-through."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sandbox.infra.ports import free_port
from sandbox.observability.exporter import StatusExporter
from sandbox.runtimes.local.observability import PrometheusServer, trace_env
from sandbox.runtimes.local.plan import make_plan
from sandbox.spec.loader import default_spec
from sandbox.spec.models import Kind

PROMTOOL = shutil.which("promtool")


def test_the_observability_profile_adds_the_stack_to_the_full_platform() -> None:
    spec = default_spec()
    plan = make_plan(spec, "t", [], "observability", spec_ports=False)
    names = {c.name for c in plan.components}
    full = {c.name for c in make_plan(spec, "t", [], "full", spec_ports=False).components}
    assert full < names
    assert {c.name for c in spec.components if c.kind is Kind.OBSERVABILITY} <= names
    for name in ("grafana", "loki", "tempo", "promtail"):
        c = plan.get(name)
        assert not c.available and "no Debian or PyPI package provides" in c.why_unavailable
    prometheus = plan.get("prometheus")
    if shutil.which("prometheus"):
        assert prometheus.available and prometheus.launcher == "binary" and "exporter" in prometheus.extra_ports
    else:
        assert not prometheus.available and "apt-get install prometheus" in prometheus.why_unavailable


@pytest.mark.skipif(PROMTOOL is None or shutil.which("prometheus") is None, reason="prometheus/promtool not installed")
def test_the_generated_prometheus_config_scrapes_the_port_map_and_passes_promtool(tmp_path: Path) -> None:
    plan = make_plan(default_spec(), "t", ["oms-service", "kraken-ws-ingest", "prometheus", "alertmanager"], None,
                     spec_ports=False)
    server = PrometheusServer(tmp_path, plan, plan.get("prometheus"), tmp_path / "status.json")
    server.prepare()
    try:
        conf = tmp_path / "config"
        result = subprocess.run([PROMTOOL, "check", "config", str(conf / "prometheus.yml")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        targets = {t["labels"]["component"]: t["targets"][0] for t in json.loads((conf / "targets.json").read_text())}
        for name in ("oms-service", "policy-service", "kraken-ws-ingest", "kraken-venue", "prometheus", "alertmanager"):
            assert targets[name] == f"127.0.0.1:{plan.get(name).port}"
        assert not {"timescaledb", "kafka", "redis", "nats"} & set(targets)  # no exporter: the sandbox's covers them
        doc = yaml.safe_load((conf / "prometheus.yml").read_text())
        assert doc["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
            f"127.0.0.1:{plan.get('alertmanager').port}"]
        exporter_job = next(j for j in doc["scrape_configs"] if j["job_name"] == "aether-sandbox")
        assert exporter_job["static_configs"][0]["targets"] == [f"127.0.0.1:{plan.get('prometheus').extra_ports['exporter']}"]
        budgets = yaml.safe_load((conf / "rules" / "budgets.yml").read_text())["groups"][0]["rules"]
        oms = plan.get("oms-service")
        assert {"record": "aether_budget_cpu_millicores", "expr": f"vector({oms.cpu_limit_m})",
                "labels": {"component": "oms-service", "bound": "limit"}} in budgets
    finally:
        server.stop()


def test_the_sandbox_exporter_serves_the_supervisor_accounting(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps({"components": [
        {"name": "redis", "state": "running", "health": "healthy", "restarts": 1,
         "usage": {"cpu_m": 12.5, "memory_mib": 3.0}},
        {"name": "oms-service", "state": "crashed", "health": "unhealthy", "restarts": 2, "usage": {}},
        {"name": "grafana", "state": "unavailable", "health": "unknown", "restarts": 0, "usage": {}},
    ]}))
    with StatusExporter(status, free_port()) as exporter:
        text = httpx.get(f"http://127.0.0.1:{exporter.port}/metrics", timeout=5).text
        assert httpx.get(f"http://127.0.0.1:{exporter.port}/other", timeout=5).status_code == 404
    samples = {(s.name, s.labels["component"]): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples[("aether_component_up", "redis")] == 1.0
    assert samples[("aether_component_up", "oms-service")] == 0.0
    assert samples[("aether_component_cpu_millicores", "redis")] == 12.5
    assert samples[("aether_component_memory_bytes", "redis")] == 3.0 * 2**20
    assert samples[("aether_component_restarts_total", "oms-service")] == 2.0
    assert not [k for k in samples if k[1] == "grafana"]  # unavailable here: not reported as down


def test_only_otel_variables_pass_through_to_the_components() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_BSP_SCHEDULE_DELAY": "200", "SECRET": "x"}
    assert trace_env(env) == {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_BSP_SCHEDULE_DELAY": "200"}
