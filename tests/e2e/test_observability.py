"""Observability end to end on the local runtime: one platform bring-up with Prometheus and Alertmanager
(the Debian binaries), the services exporting traces to an OTLP/HTTP receiver inside the test.

* Prometheus scrapes every component (the sandbox exporter covering the infrastructure);
* a replay and a smoke load show up in the very queries the committed dashboards use, and every metric those
  dashboards and the alert rules name exists in the live Prometheus;
* one order's trace spans auth, OMS, policy, risk and fees;
* a deliberately broken service (SIGSTOP) fires its alert in Alertmanager.

Short scrape/evaluation intervals and alert durations come from AETHER_OBS_* (the committed rules unchanged).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from sandbox.observability.generate import ROOT
from sandbox.observability.names import BUILTIN, dashboard_exprs, promql_names, rule_names, sample_names
from sandbox.observability.otlp_sink import OtlpSink

pytestmark = [
    pytest.mark.integration,
    pytest.mark.xdist_group("observability"),
    pytest.mark.skipif(
        not (shutil.which("prometheus") and shutil.which("prometheus-alertmanager")),
        reason="prometheus and prometheus-alertmanager are not installed (Debian packages; scripts/system-deps.sh)",
    ),
]

NAME = "obs-e2e"
COMPONENTS = ["oms-service", "kraken-ws-ingest", "prometheus", "alertmanager", "grafana", "promtail"]  # grafana: + loki, tempo
TRADE_PATH = {"auth-service", "oms-service", "policy-service", "risk-service", "fees-service"}


def wait(check: Callable[[], Any], what: str, timeout: float = 30.0, interval: float = 0.5) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last answer."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last: {last!r})")


@dataclass
class Platform:
    env: dict[str, str]
    root: Path
    status: dict[str, Any]
    sink: OtlpSink

    def cli(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sandbox.cli", *args], env=self.env, capture_output=True,
                              text=True, timeout=timeout)

    def component(self, name: str) -> dict[str, Any]:
        return next(c for c in self.status["components"] if c["name"] == name)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.component(name)['port']}"

    def query(self, expr: str) -> list[dict[str, Any]]:
        resp = httpx.get(f"{self.url('prometheus')}/api/v1/query", params={"query": expr}, timeout=10)
        body = resp.json()
        assert body["status"] == "success", (expr, body)
        return body["data"]["result"]

    def admin_token(self, headers: dict[str, str] | None = None) -> str:
        creds = json.loads((self.root / NAME / "credentials.json").read_text())
        resp = httpx.post(f"{self.url('auth-service')}/v1/login", headers=headers, timeout=10,
                          json={"username": "admin", "password": creds["bootstrap_admin_password"]})
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    root = Path(tempfile.mkdtemp(prefix="aether-obs-"))
    root.chmod(0o711)
    sink = OtlpSink().start()
    env = {
        **os.environ, "AETHER_SANDBOX_HOME": str(root), "AETHER_SANDBOX_PORTS": "dynamic",
        "AETHER_OBS_SCRAPE_INTERVAL": "2s", "AETHER_OBS_EVALUATION_INTERVAL": "1s", "AETHER_OBS_ALERT_FOR": "3s",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink.url, "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    p = Platform(env, root, {}, sink)
    try:
        up = p.cli("up", "--runtime", "local", "--name", NAME, "--json", "--timeout", "180", *COMPONENTS, timeout=240)
        assert up.returncode == 0, up.stdout + up.stderr
        p.status = json.loads(up.stdout)
        yield p
    finally:
        p.cli("down", "--runtime", "local", "--name", NAME, "--volumes", timeout=120)
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_prometheus_scrapes_every_component_and_status_shows_the_urls(platform: Platform) -> None:
    running = {c["name"] for c in platform.status["components"] if c["state"] == "running"}
    scraped = running - {"timescaledb", "kafka", "nats", "redis"}

    def targets() -> dict[str, str] | None:
        active = httpx.get(f"{platform.url('prometheus')}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        health = {t["labels"].get("component", t["labels"]["job"]): t["health"] for t in active}
        return health if health and all(v == "up" for v in health.values()) and scraped <= set(health) else None

    health = wait(targets, "every target up")
    assert set(health) == scraped | {"aether-sandbox"}
    # The infrastructure, which has no exporter here, is covered by the sandbox's accounting.
    infra = wait(lambda: {r["metric"]["component"]: float(r["value"][1])
                          for r in platform.query('aether_component_up{component=~"timescaledb|kafka|nats|redis"}')
                          } or None, "the sandbox exporter's series")
    assert infra == {"timescaledb": 1.0, "kafka": 1.0, "nats": 1.0, "redis": 1.0}
    st = platform.cli("status", "--runtime", "local", "--name", NAME, "--json")
    assert st.returncode == 0, st.stderr
    urls = json.loads(st.stdout)["observability"]
    assert urls["prometheus"]["url"] == platform.url("prometheus")
    assert urls["alertmanager"]["url"] == platform.url("alertmanager")
    for absent in ("grafana", "loki", "tempo", "promtail"):
        assert urls[absent]["url"] is None and "no Debian or PyPI package" in urls[absent]["detail"]


def _load(platform: Platform, rounds: int = 5, reads: int = 6) -> None:
    """A smoke load with plain HTTP, spread over a few scrapes (a counter's first sample has no rate yet):
    reads on the services of the trade path and one order per round."""
    token = platform.admin_token()
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as client:
        for _ in range(rounds):
            for _ in range(reads):
                client.get(f"{platform.url('auth-service')}/v1/me")
                client.get(f"{platform.url('oms-service')}/v1/orders", params={"limit": 5})
                client.get(f"{platform.url('universe-service')}/v1/instruments")
            resp = client.post(f"{platform.url('oms-service')}/v1/orders", json={
                "account": "acct-obs", "client_order_id": f"obs-{secrets.token_hex(6)}", "symbol": "XBT/USD",
                "side": "buy", "type": "limit", "qty": "0.01", "price": "29000.0"})
            assert resp.status_code < 500, resp.text
            time.sleep(2.0)  # the test's scrape interval


def test_a_replay_and_a_smoke_load_show_up_in_the_dashboard_queries(platform: Platform) -> None:
    replay = platform.cli("replay", "v2-book10-majors", "--max", "--json", "--runtime", "local", "--name", NAME)
    assert replay.returncode == 0, replay.stdout[-2000:] + replay.stderr[-2000:]
    _load(platform)
    boards = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "grafana" / "dashboards").glob("*.json"))}
    panels: dict[tuple[str, str], list[str]] = {}
    for board, b in boards.items():
        for title, uid, expr in dashboard_exprs(b):
            if uid == "prometheus":
                panels.setdefault((board, title), []).append(expr)

    def positive(board: str, title: str, where: Callable[[dict[str, str]], bool] = lambda m: True) -> bool:
        """Whether one of the panel's own queries shows a value above zero."""
        return any(float(r["value"][1]) > 0
                   for expr in panels[(board, title)] for r in platform.query(expr) if where(r["metric"]))

    def component(name: str) -> Callable[[dict[str, str]], bool]:
        return lambda m: m.get("component") == name

    wait(lambda: positive("market-data", "Replay rate (venue frames sent)"), "replay rate on the dashboard")
    wait(lambda: positive("market-data", "Ingest frames received"), "ingest frames on the dashboard")
    wait(lambda: positive("market-data", "Kafka throughput (records acknowledged, per topic)"), "Kafka throughput")
    wait(lambda: positive("market-data", "Checksums"), "checksums verified")
    wait(lambda: positive("overview", "Request rate", component("oms-service")), "OMS request rate")
    wait(lambda: positive("overview", "Request rate", component("auth-service")), "auth request rate")
    wait(lambda: positive("service-oms-service", "Requests by route"), "OMS requests by route")
    wait(lambda: positive("service-auth-service", "Latency percentiles"), "auth latency percentiles")
    wait(lambda: positive("service-oms-service", "CPU against budget"), "OMS CPU and its budget")
    wait(lambda: positive("oms", "Orders by outcome"), "orders by outcome")
    wait(lambda: positive("oms", "Pre-trade checks"), "policy and risk checks")
    # Every dashboard query runs on the live Prometheus (platform.query asserts success for each).
    for exprs in panels.values():
        for expr in exprs:
            platform.query(expr)
    # aether-sandbox metrics answers from Prometheus with the same figures.
    shown = platform.cli("metrics", "--runtime", "local", "--name", NAME, "--json")
    assert shown.returncode == 0, shown.stderr
    view = json.loads(shown.stdout)
    assert view["source"] == "prometheus"
    assert view["oms"]["orders"] >= 5 and view["ingest"]["checksums_verified"] > 0
    oms = next(c for c in view["components"] if c["component"] == "oms-service")
    assert oms["requests_per_s"] > 0 and oms["cpu_limit_m"] == platform.component("oms-service")["usage"]["cpu_limit_m"]


def test_every_metric_named_by_dashboards_and_rules_exists_in_the_live_prometheus(platform: Platform) -> None:
    prom = platform.url("prometheus")
    wait(lambda: platform.query("sum(oms_orders_total)"), "the OMS counters scraped")
    present = set(httpx.get(f"{prom}/api/v1/label/__name__/values", timeout=10).json()["data"])
    # Labelled families with no sample yet (e.g. no checksum has failed) are known from their # TYPE line.
    metadata = httpx.get(f"{prom}/api/v1/metadata", timeout=10).json()["data"]
    for family, entries in metadata.items():
        present |= sample_names(family, entries[0]["type"])
    recorded, read = set(), set()
    for path in sorted((ROOT / "prometheus" / "rules").glob("*.yml")):
        r, n = rule_names(yaml.safe_load(path.read_text())["groups"])
        recorded |= r
        read |= n
    for path in sorted((ROOT / "grafana" / "dashboards").glob("*.json")):
        for _, uid, expr in dashboard_exprs(json.loads(path.read_text())):
            if uid == "prometheus":
                read |= promql_names(expr)
    missing = read - present - recorded - BUILTIN
    assert not missing, f"named in dashboards or rules, absent from the live Prometheus: {sorted(missing)}"
    assert recorded <= present, sorted(recorded - present)  # every recording rule produced its series


def test_one_orders_trace_spans_auth_oms_policy_risk_and_fees(platform: Platform) -> None:
    trace_id = secrets.token_hex(16)
    # The client's own span: a login then the order, both carrying its context (as an instrumented client would).
    client_span = secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{client_span}-01"}
    token = platform.admin_token(headers)
    resp = httpx.post(f"{platform.url('oms-service')}/v1/orders", timeout=20, headers={
        **headers, "Authorization": f"Bearer {token}"}, json={
        "account": "acct-trace", "client_order_id": f"trace-{secrets.token_hex(6)}", "symbol": "XBT/USD",
        "side": "buy", "type": "limit", "qty": "0.01", "price": "29000.0"})
    assert resp.status_code < 500, resp.text
    spans = platform.sink.wait_for(trace_id, TRADE_PATH, timeout=20)
    by_service: dict[str, list[Any]] = {}
    for s in spans:
        by_service.setdefault(s.service, []).append(s)
    assert TRADE_PATH <= set(by_service), {s: [x.name for x in v] for s, v in by_service.items()}
    [oms] = [s for s in by_service["oms-service"] if s.name == "POST /v1/orders"]
    assert oms.parent_span_id == client_span
    assert any(s.name == "POST /v1/login" and s.parent_span_id == client_span for s in by_service["auth-service"])
    # policy, risk and fees were called by the OMS within the order's span: the context crossed the OMS.
    for service in ("policy-service", "risk-service", "fees-service"):
        assert any(s.parent_span_id == oms.span_id for s in by_service[service]), [
            (s.name, s.parent_span_id) for s in by_service[service]]
    # Probes and scrapes are never traced.
    assert not [s for s in platform.sink.spans if s.name.endswith(("/healthz", "/metrics"))]


def test_a_broken_service_fires_its_alert_in_alertmanager(platform: Platform) -> None:
    victim = platform.component("fees-service")
    os.kill(victim["pid"], signal.SIGSTOP)  # hung: answers nothing, scrapes time out
    try:
        def fired() -> list[dict[str, Any]]:
            alerts = httpx.get(f"{platform.url('alertmanager')}/api/v2/alerts", timeout=10).json()
            return [a for a in alerts if a["labels"].get("alertname") == "AetherComponentDown"
                    and a["labels"].get("component") == "fees-service" and a["status"]["state"] == "active"]

        # One alert per failing series: the scrape target's `up` and the supervisor's own view may both fire.
        alerts = wait(fired, "AetherComponentDown for fees-service in Alertmanager", timeout=60)
        for alert in alerts:
            assert alert["labels"]["severity"] == "page"
            assert alert["annotations"]["runbook"] == "docs/slo.md#aethercomponentdown"
    finally:
        os.kill(victim["pid"], signal.SIGCONT)
