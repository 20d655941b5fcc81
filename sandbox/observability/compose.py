"""How the compose ``observability`` profile wires the committed files into the official images.

The compose generator (:mod:`sandbox.runtimes.docker.compose`) renders the
services; this is the one place saying which file of ``observability/`` goes to
which path of which container, and with which command, so the configuration
files and the containers cannot disagree (a unit test checks the paths the
files themselves reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Wiring:
    """Read-only bind mounts, command and environment of one container.

    A mount's source is a repository path (``observability/...``) or an absolute host path (the Docker socket).
    """

    volumes: tuple[tuple[str, str], ...]
    command: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)


WIRING: dict[str, Wiring] = {
    "prometheus": Wiring(
        volumes=(("observability/prometheus/prometheus.yml", "/etc/prometheus/prometheus.yml"),
                 ("observability/prometheus/rules", "/etc/prometheus/rules")),
        command=("--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus",
                 "--storage.tsdb.retention.time=2d", "--web.enable-lifecycle"),
    ),
    "alertmanager": Wiring(
        volumes=(("observability/alertmanager/alertmanager.yml", "/etc/alertmanager/alertmanager.yml"),),
        command=("--config.file=/etc/alertmanager/alertmanager.yml", "--storage.path=/alertmanager"),
    ),
    "grafana": Wiring(
        volumes=(("observability/grafana/provisioning/datasources", "/etc/grafana/provisioning/datasources"),
                 ("observability/grafana/provisioning/dashboards", "/etc/grafana/provisioning/dashboards"),
                 ("observability/grafana/dashboards", "/var/lib/grafana/dashboards")),
        environment={"GF_AUTH_ANONYMOUS_ENABLED": "true", "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                     "GF_ANALYTICS_REPORTING_ENABLED": "false", "GF_ANALYTICS_CHECK_FOR_UPDATES": "false"},
    ),
    "loki": Wiring(
        volumes=(("observability/loki/loki.yml", "/etc/loki/loki.yml"),),
        command=("-config.file=/etc/loki/loki.yml",),
    ),
    "tempo": Wiring(
        volumes=(("observability/tempo/tempo.yml", "/etc/tempo/tempo.yml"),),
        command=("-config.file=/etc/tempo/tempo.yml",),
    ),
    # Ships every container's log to Loki (the loki logging driver is a plugin that cannot be installed
    # offline): it discovers the containers through the Docker socket, mounted read-only.
    "promtail": Wiring(
        volumes=(("observability/promtail/promtail.yml", "/etc/promtail/promtail.yml"),
                 ("/var/run/docker.sock", "/var/run/docker.sock")),
        command=("-config.file=/etc/promtail/promtail.yml",),
    ),
}

#: Environment of every kit service, the ingest and the venue when the observability profile runs:
#: traces go to Tempo's OTLP/HTTP receiver. Leave it empty otherwise (tracing then stays off).
TRACE_ENVIRONMENT = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://tempo:4318"}
