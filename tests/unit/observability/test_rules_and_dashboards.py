"""The committed observability files: generated from the spec, parsed by promtool, alerts that fire on the
series they watch, and every metric they name exposed by a registry in the code.

Live exposure (a running platform scraped by Prometheus) is checked in tests/e2e/test_observability.py.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from fastapi import FastAPI

from sandbox.ingest.metrics import registry_for
from sandbox.ingest.stats import RunStats, Stats
from sandbox.observability.exporter import StatusCollector
from sandbox.observability.generate import ROOT, drift
from sandbox.observability.names import BUILTIN, dashboard_exprs, promql_names, registry_names, rule_names
from sandbox.observability.rules import MIB, SLOS
from sandbox.services.kit.metrics import AppMetrics
from sandbox.spec.budget import budget_of
from sandbox.spec.loader import default_spec
from sandbox.spec.models import Kind
from sandbox.venue.metrics import venue_metrics
from sandbox.venue.ws import ReplayStats

RULES = sorted((ROOT / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_committed_files_are_what_the_spec_generates() -> None:
    assert drift(default_spec()) == [], "run `python -m sandbox.observability.generate`"
    assert {p.name for p in RULES} == {"budgets.yml", "recording.yml", "slo.yml"}


def test_budget_series_carry_the_specs_enforced_budgets() -> None:
    spec = default_spec()
    [group] = load_yaml(ROOT / "prometheus" / "rules" / "budgets.yml")["groups"]
    values = {(r["record"], r["labels"]["component"], r["labels"]["bound"]): r["expr"] for r in group["rules"]}
    assert len(values) == 4 * len(spec.components)
    for c in spec.components:
        b = budget_of(c)
        assert values[("aether_budget_cpu_millicores", c.name, "limit")] == f"vector({b.cpu_m.limit})"
        assert values[("aether_budget_cpu_millicores", c.name, "request")] == f"vector({b.cpu_m.request})"
        assert values[("aether_budget_memory_bytes", c.name, "limit")] == f"vector({b.memory_mib.limit * MIB})"


@needs_promtool
@pytest.mark.parametrize("path", RULES, ids=lambda p: p.name)
def test_promtool_accepts_every_rule_file(path: Path) -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def _expected(alert: str, component: str, **labels: str) -> dict:
    slo = next(s for s in SLOS if s.alert == alert)
    return {
        "exp_labels": {"component": component, "severity": slo.severity, **labels},
        "exp_annotations": {"summary": f"{component}: {alert}", "objective": slo.objective,
                            "runbook": f"docs/slo.md#{alert.lower()}"},
    }


@needs_promtool
def test_every_slo_alert_fires_on_the_series_it_watches_and_not_on_healthy_ones(tmp_path: Path) -> None:
    spec = default_spec()
    risk, redis = budget_of(spec.component("risk-service")), budget_of(spec.component("redis"))
    over_cpu = int(risk.cpu_m.limit * 1.5)
    near_mem = int(redis.memory_mib.limit * 0.95 * MIB)
    series = [
        # oms-service: half its requests fail; auth-service: healthy
        {"series": 'http_requests_total{component="oms-service",status="500"}', "values": "0+60x40"},
        {"series": 'http_requests_total{component="oms-service",status="200"}', "values": "0+60x40"},
        {"series": 'http_requests_total{component="auth-service",status="200"}', "values": "0+600x40"},
        # policy-service: every request takes between 0.5 and 1 s; auth-service answers within 5 ms
        {"series": 'http_request_duration_seconds_bucket{component="policy-service",le="0.5"}', "values": "0x40"},
        {"series": 'http_request_duration_seconds_bucket{component="policy-service",le="1"}', "values": "0+60x40"},
        {"series": 'http_request_duration_seconds_bucket{component="policy-service",le="+Inf"}', "values": "0+60x40"},
        {"series": 'http_request_duration_seconds_bucket{component="auth-service",le="0.005"}', "values": "0+600x40"},
        {"series": 'http_request_duration_seconds_bucket{component="auth-service",le="+Inf"}', "values": "0+600x40"},
        # sandbox accounting: risk-service over its CPU limit, redis near its memory limit, auth-service fine
        {"series": 'aether_component_cpu_millicores{component="risk-service"}', "values": f"{over_cpu}x40"},
        {"series": 'aether_component_memory_bytes{component="redis"}', "values": f"{near_mem}x40"},
        {"series": 'aether_component_cpu_millicores{component="auth-service"}', "values": "5x40"},
        {"series": 'aether_component_memory_bytes{component="auth-service"}', "values": f"{64 * MIB}x40"},
        {"series": 'aether_component_up{component="auth-service"}', "values": "1x40"},
        # the ingest: one checksum failure; then nothing published for a while
        {"series": 'ingest_checksums_failed_total{component="kraken-ws-ingest",symbol="XBT/USD"}',
         "values": "0 0 0 1 1 1 1 1 1 1 1"},
        {"series": 'ingest_records_published_total{component="kraken-ws-ingest",topic="kraken.book"}',
         "values": "0+100x10 1000x30"},
        {"series": 'ingest_connected{component="kraken-ws-ingest"}', "values": "1x40"},
        # the OMS: reconciliation found a difference
        {"series": 'oms_reconciliation_differences_total{component="oms-service",kind="missing_fill"}',
         "values": "0 0 1 1 1 1 1 1 1 1 1"},
        # a target that stops answering
        {"series": 'up{job="aether",component="config-service"}', "values": "1 1 0x38"},
        {"series": 'up{job="aether",component="auth-service"}', "values": "1x40"},
    ]
    tests = {
        "rule_files": [str(p) for p in RULES],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "input_series": series,
            "alert_rule_test": [
                {"eval_time": "4m", "alertname": "AetherIngestChecksumFailures",
                 "exp_alerts": [_expected("AetherIngestChecksumFailures", "kraken-ws-ingest")]},
                {"eval_time": "4m", "alertname": "AetherReconciliationDifferences",
                 "exp_alerts": [_expected("AetherReconciliationDifferences", "oms-service")]},
                {"eval_time": "4m", "alertname": "AetherMarketDataStale", "exp_alerts": []},
                {"eval_time": "16m", "alertname": "AetherMarketDataStale",
                 "exp_alerts": [_expected("AetherMarketDataStale", "kraken-ws-ingest")]},
                {"eval_time": "4m", "alertname": "AetherHighErrorRatio", "exp_alerts": []},
                {"eval_time": "12m", "alertname": "AetherHighErrorRatio",
                 "exp_alerts": [_expected("AetherHighErrorRatio", "oms-service")]},
                {"eval_time": "20m", "alertname": "AetherHighLatencyP99",
                 "exp_alerts": [_expected("AetherHighLatencyP99", "policy-service")]},
                {"eval_time": "12m", "alertname": "AetherCpuOverBudget",
                 "exp_alerts": [_expected("AetherCpuOverBudget", "risk-service")]},
                {"eval_time": "12m", "alertname": "AetherMemoryNearBudget",
                 "exp_alerts": [_expected("AetherMemoryNearBudget", "redis")]},
                {"eval_time": "6m", "alertname": "AetherComponentDown",
                 "exp_alerts": [_expected("AetherComponentDown", "config-service", job="aether")]},
            ],
        }],
    }
    path = tmp_path / "slo_test.yml"
    path.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = subprocess.run([PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def code_registry_names() -> set[str]:
    """Every metric name the components' registries can expose, built the way the components build them."""
    from sandbox.services.oms.runtime import register_counters
    from sandbox.services.policy.runtime import Counters as PolicyCounters
    from sandbox.services.risk.runtime import Counters as RiskCounters

    names: set[str] = set()
    for register in (register_counters, PolicyCounters.register, RiskCounters.register):
        app = FastAPI()
        app.state.metrics = AppMetrics("svc")
        register(app)
        names |= registry_names(app.state.metrics.registry)
    stats = Stats(RunStats("unit"))
    stats.feed_lag_s = 0.25  # exported once a frame with an exchange time arrived
    names |= registry_names(registry_for(stats))
    names |= registry_names(venue_metrics(lambda: SimpleNamespace(stats=ReplayStats()), lambda: 0).registry)
    status = {"components": [{"name": "x", "state": "running", "health": "healthy", "restarts": 0,
                              "usage": {"cpu_m": 1.0, "memory_mib": 1.0}}]}
    for family in StatusCollector(lambda: status).collect():
        names |= {s.name for s in family.samples}
    return names


def test_every_metric_the_rules_and_dashboards_read_is_exposed_by_the_code() -> None:
    exposed = code_registry_names()
    recorded, read = set(), set()
    for path in RULES:
        r, n = rule_names(load_yaml(path)["groups"])
        recorded |= r
        read |= n
    for path in DASHBOARDS:
        for _, uid, expr in dashboard_exprs(json.loads(path.read_text())):
            if uid == "prometheus":
                read |= promql_names(expr)
    missing = read - exposed - recorded - BUILTIN
    assert not missing, f"named in rules or dashboards but exposed by no component: {sorted(missing)}"
    # The check has teeth: the HTTP, process, OMS and ingest families are all in the code's registries.
    assert {"http_requests_total", "process_cpu_seconds_total", "oms_reconciliation_differences_total",
            "ingest_checksums_failed_total", "venue_replay_frames_sent_total"} <= exposed


def test_promql_names_leave_out_functions_labels_and_durations() -> None:
    expr = ('histogram_quantile(0.99, sum by (component, le) (rate(http_request_duration_seconds_bucket'
            '{component="a", le=~"0.5|1"}[5m]))) > on (component) 0.9 * aether_budget_memory_bytes{bound="limit"}'
            ' or absent(up) unless ALERTS offset 5m')
    assert promql_names(expr) == {"http_request_duration_seconds_bucket", "aether_budget_memory_bytes", "up", "ALERTS"}


def test_dashboards_cover_every_service_and_use_provisioned_data_sources() -> None:
    spec = default_spec()
    sources = load_yaml(ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yml")["datasources"]
    uids = {s["uid"] for s in sources}
    assert uids == {"prometheus", "loki", "tempo"}
    boards = {p.name: json.loads(p.read_text()) for p in DASHBOARDS}
    services = [c.name for c in spec.components if c.kind is Kind.SERVICE]
    assert {f"service-{s}.json" for s in services} | {"overview.json", "market-data.json", "oms.json"} == set(boards)
    assert len({b["uid"] for b in boards.values()}) == len(boards)
    for name, board in boards.items():
        assert board["panels"], name
        assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] in uids, (name, panel["title"])
            assert panel["targets"], (name, panel["title"])
        for title, uid, expr in dashboard_exprs(board):
            assert uid in uids and expr.strip(), (name, title)
            if uid == "prometheus":
                assert promql_names(expr), (name, title, expr)
    for s in services:
        exprs = " ".join(e for _, _, e in dashboard_exprs(boards[f"service-{s}.json"]))
        for needed in ("http_requests_total", "http_request_duration_seconds_bucket", "component:cpu_millicores",
                       "aether_budget_cpu_millicores", "aether_budget_memory_bytes", f'component="{s}"'):
            assert needed in exprs, (s, needed)


def test_grafana_loki_tempo_promtail_and_alertmanager_configs_agree_with_the_spec() -> None:
    spec = default_spec()
    port = {c.name: c.port for c in spec.components}
    sources = {s["uid"]: s for s in load_yaml(ROOT / "grafana/provisioning/datasources/datasources.yml")["datasources"]}
    assert sources["prometheus"]["url"] == f"http://prometheus:{port['prometheus']}"
    assert sources["loki"]["url"] == f"http://loki:{port['loki']}"
    assert sources["tempo"]["url"] == f"http://tempo:{port['tempo']}"
    assert sources["loki"]["jsonData"]["derivedFields"][0]["datasourceUid"] == "tempo"
    providers = load_yaml(ROOT / "grafana/provisioning/dashboards/dashboards.yml")["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"].startswith("/")
    loki = load_yaml(ROOT / "loki/loki.yml")
    assert loki["server"]["http_listen_port"] == port["loki"] and loki["auth_enabled"] is False
    assert loki["schema_config"]["configs"][0]["store"] == "tsdb"
    tempo = load_yaml(ROOT / "tempo/tempo.yml")
    assert tempo["server"]["http_listen_port"] == port["tempo"]
    assert tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    promtail = load_yaml(ROOT / "promtail/promtail.yml")
    assert promtail["clients"][0]["url"] == f"http://loki:{port['loki']}/loki/api/v1/push"
    relabel = promtail["scrape_configs"][0]["relabel_configs"]
    assert any(r["target_label"] == "component" for r in relabel)
    prom = load_yaml(ROOT / "prometheus/prometheus.yml")
    [aether] = [j for j in prom["scrape_configs"] if j["job_name"] == "aether"]
    scraped = {sc["labels"]["component"]: sc["targets"][0] for sc in aether["static_configs"]}
    for c in spec.components:
        if c.kind in (Kind.SERVICE, Kind.INGEST, Kind.OBSERVABILITY) or c.name == "kraken-venue":
            assert scraped[c.name] == f"{c.name}:{c.port}"
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"alertmanager:{port['alertmanager']}"]
    amtool = shutil.which("amtool")
    if amtool:
        result = subprocess.run([amtool, "check-config", str(ROOT / "alertmanager/alertmanager.yml")],
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    else:
        assert load_yaml(ROOT / "alertmanager/alertmanager.yml")["route"]["receiver"] == "sandbox"


def test_the_compose_wiring_mounts_existing_files_where_the_configs_expect_them() -> None:
    from sandbox.observability.compose import TRACE_ENVIRONMENT, WIRING

    repo = ROOT.parent
    mounted: dict[str, str] = {}
    for name, wiring in WIRING.items():
        for source, target in wiring.volumes:
            if not source.startswith("/"):
                assert (repo / source).exists(), (name, source)
            mounted[target] = source
    prom = load_yaml(ROOT / "prometheus/prometheus.yml")
    [rules_glob] = prom["rule_files"]
    assert mounted[rules_glob.rsplit("/", 1)[0]] == "observability/prometheus/rules"
    assert "--config.file=/etc/prometheus/prometheus.yml" in WIRING["prometheus"].command
    providers = load_yaml(ROOT / "grafana/provisioning/dashboards/dashboards.yml")["providers"]
    assert mounted[providers[0]["options"]["path"]] == "observability/grafana/dashboards"
    for name in ("loki", "tempo", "promtail"):
        [config_flag] = [c for c in WIRING[name].command if c.startswith("-config.file=")]
        assert config_flag.split("=", 1)[1] in mounted
    tempo = load_yaml(ROOT / "tempo/tempo.yml")
    otlp_port = tempo["distributor"]["receivers"]["otlp"]["protocols"]["http"]["endpoint"].rsplit(":", 1)[1]
    assert TRACE_ENVIRONMENT["OTEL_EXPORTER_OTLP_ENDPOINT"] == f"http://tempo:{otlp_port}"


def test_the_slo_document_states_every_objective() -> None:
    text = (ROOT.parent / "docs" / "slo.md").read_text()
    for slo in SLOS:
        assert f"### {slo.alert}\n" in text, slo.alert  # the runbook anchor of the alert's annotation
        row = next(line for line in text.splitlines() if line.startswith(f"| {slo.alert} |"))
        assert slo.severity in row, slo.alert
