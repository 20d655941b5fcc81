"""Prometheus and Alertmanager as local components (the Debian binaries, when installed).

Prometheus gets a configuration generated from the local plan at start: job
``aether`` scrapes every component that serves ``/metrics`` on its loopback
port (a ``file_sd`` targets file), job ``aether-sandbox`` scrapes the sandbox's
own exporter (every component's state, CPU and memory from the supervisor's
accounting, served from the supervisor process on the plan's ``exporter``
port), the rule files are rendered from the plan's budgets (the same generator
as the committed ones) and alerts go to the local Alertmanager. Alertmanager runs
the committed ``observability/alertmanager/alertmanager.yml`` in single-node mode.
Grafana, Loki, Tempo and Promtail have no package here: the plan reports them unavailable.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, ClassVar

import yaml

from sandbox.infra.process import HttpServer, ManagedServer
from sandbox.observability.exporter import StatusExporter
from sandbox.observability.prometheus import Target, config, file_sd, scraped
from sandbox.observability.rules import BudgetRow, rule_files
from sandbox.observability.settings import ObservabilitySettings
from sandbox.runtimes.local.plan import ComponentPlan, Plan

REPO = Path(__file__).resolve().parents[3]
ALERTMANAGER_CONFIG = REPO / "observability" / "alertmanager" / "alertmanager.yml"
#: The binaries, by component (Debian names).
BINARIES = {"prometheus": "prometheus", "alertmanager": "prometheus-alertmanager"}
#: The local runtime runs only these observability components.
RUNNABLE = frozenset(BINARIES)


def binary_for(component: str) -> str | None:
    """The path of ``component``'s binary on PATH, or None."""
    name = BINARIES.get(component)
    return shutil.which(name) if name else None


def trace_env(environ: os._Environ[str] | dict[str, str] | None = None) -> dict[str, str]:
    """The ``OTEL_*`` variables the components inherit (so ``OTEL_EXPORTER_OTLP_ENDPOINT`` turns tracing on)."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if k.startswith("OTEL_")}


class PrometheusServer(HttpServer):
    """The Prometheus binary with a configuration generated from the plan, plus the sandbox exporter."""

    name: ClassVar[str] = "prometheus"
    health_path = "/-/ready"
    # ``ports`` lists only Prometheus's own: the exporter listens in the supervisor, not in Prometheus's process tree.

    def __init__(self, data_dir: Path, plan: Plan, me: ComponentPlan, status_json: Path,
                 settings: ObservabilitySettings | None = None, **kwargs: Any) -> None:
        super().__init__(data_dir, me.port or 0, **kwargs)
        self.plan = plan
        self.exporter_port = me.extra_ports["exporter"]
        self.status_json = status_json
        self.settings = settings or ObservabilitySettings()
        self.exporter: StatusExporter | None = None

    def targets(self) -> list[Target]:
        """Every planned component with a port that serves ``/metrics``."""
        return [
            Target(c.name, f"127.0.0.1:{c.port}")
            for c in self.plan.components
            if c.port and scraped(c.name, c.kind) and (c.launcher == "python" or c.name in RUNNABLE)
        ]

    def prepare(self) -> None:
        conf = self.data_dir / "config"
        rules = conf / "rules"
        rules.mkdir(parents=True, exist_ok=True)
        rows = [BudgetRow(c.name, c.cpu_request_m, c.cpu_limit_m, c.memory_request_mib, c.memory_limit_mib)
                for c in self.plan.components]
        for name, doc in rule_files(rows, self.settings.alert_for).items():
            (rules / name).write_text(yaml.safe_dump(doc, sort_keys=False))
        (conf / "targets.json").write_text(json.dumps(file_sd(self.targets()), indent=2))
        alertmanagers = [f"127.0.0.1:{c.port}" for c in self.plan.components if c.name == "alertmanager" and c.port]
        doc = config(
            rule_files=[str(rules / "*.yml")],
            scrape_interval=self.settings.scrape_interval,
            evaluation_interval=self.settings.evaluation_interval,
            targets_file=str(conf / "targets.json"),
            alertmanagers=alertmanagers,
            sandbox_exporter=f"127.0.0.1:{self.exporter_port}",
        )
        (conf / "prometheus.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
        self.exporter = StatusExporter(self.status_json, self.exporter_port).start()

    def command(self) -> list[str]:
        return [
            binary_for("prometheus") or "prometheus",
            f"--config.file={self.data_dir / 'config' / 'prometheus.yml'}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--storage.tsdb.retention.time={self.settings.retention}",
            f"--web.listen-address={self.host}:{self.port}",
            "--web.enable-lifecycle",
        ]

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            if self.exporter is not None:
                self.exporter.stop()
                self.exporter = None


class AlertmanagerServer(HttpServer):
    """The Alertmanager binary, single node, with the committed configuration."""

    name: ClassVar[str] = "alertmanager"
    health_path = "/-/ready"

    def prepare(self) -> None:
        shutil.copyfile(ALERTMANAGER_CONFIG, self.data_dir / "alertmanager.yml")

    def command(self) -> list[str]:
        return [
            binary_for("alertmanager") or "prometheus-alertmanager",
            f"--config.file={self.data_dir / 'alertmanager.yml'}",
            f"--storage.path={self.data_dir / 'data'}",
            f"--web.listen-address={self.host}:{self.port}",
            "--cluster.listen-address=",
        ]


def build(c: ComponentPlan, plan: Plan, data_dir: Path, status_json: Path) -> ManagedServer:
    """The server of an observability component the local runtime runs."""
    if c.name == "prometheus":
        return PrometheusServer(data_dir, plan, c, status_json, start_timeout=60.0)
    if c.name == "alertmanager":
        return AlertmanagerServer(data_dir, c.port or 0, start_timeout=60.0)
    raise ValueError(f"{c.name}: the local runtime does not run it")


def unavailable_reason(component: str) -> str:
    """Why an observability component cannot run locally."""
    if component in BINARIES:
        return f"{BINARIES[component]} not installed (Debian: apt-get install {BINARIES[component]})"
    return (f"no Debian or PyPI package provides {component}: the docker runtime's observability profile "
            "runs its official image where a registry is reachable")
