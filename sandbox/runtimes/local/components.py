"""Turning a :class:`ComponentPlan` into a running server.

Infrastructure runs on the embedded servers of :mod:`sandbox.infra`; the
sandbox's own components (services, venue, ingest, scheduler) run as
``python -m MODULE`` processes whose readiness is ``GET /healthz``.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.nats import EmbeddedNats
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.process import ManagedServer, PythonModuleServer
from sandbox.infra.redis import EmbeddedRedis
from sandbox.runtimes.env import AddressBook, render_env
from sandbox.runtimes.local.observability import trace_env
from sandbox.runtimes.local.plan import ComponentPlan, Plan
from sandbox.runtimes.local.state import StateDir, write_kraken_credentials

#: Kafka topics the platform uses; created explicitly (Tansu auto-creates with 4 partitions).
PLATFORM_TOPICS = ("oms.orders", "oms.fills", "risk.events")


class Context(AddressBook):
    """The local address book: the running infrastructure and components on loopback."""

    bind_host = "127.0.0.1"

    def __init__(self, state: StateDir, plan: Plan, servers: dict[str, ManagedServer], creds: dict[str, str]) -> None:
        self.state = state
        self.sandbox = state.name
        self.plan = plan
        self.servers = servers
        self.creds = creds

    def _port(self, name: str) -> int:
        port = self.plan.get(name).port
        if port is None:
            raise KeyError(f"{name} has no port (not available here)")
        return port

    def has(self, component: str) -> bool:
        try:
            return self.plan.get(component).port is not None
        except KeyError:
            return False

    def postgres_dsn(self, database: str) -> str:
        pg = self.servers["timescaledb"]
        assert isinstance(pg, EmbeddedPostgres)
        return pg.dsn(database)

    def host_port(self, component: str, port: str = "") -> str:
        if port:
            target = self.plan.get(component)
            return f"127.0.0.1:{target.extra_ports.get(port, target.port)}"
        return f"127.0.0.1:{self._port(component)}"

    def cache_dir(self, component: str) -> str:
        cache = self.state.data(component) / "cache"
        cache.mkdir(parents=True, exist_ok=True)
        return str(cache)

    def credential(self, name: str) -> str:
        return self.creds[name]

    def kraken_credentials_dir(self) -> str:
        """Kraken API credentials as files, the way Kubernetes projects /var/run/secrets/kraken."""
        return str(write_kraken_credentials(self.state, self.creds))

    def render_env(self, c: ComponentPlan) -> dict[str, str]:
        """The full environment of component ``c``: a few inherited variables, its templates, the common settings."""
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH")}
        env.update(trace_env())  # OTEL_EXPORTER_OTLP_ENDPOINT & co. turn tracing on (docs/observability.md)
        env.update(render_env(c.name, c.env, self, port=c.port, extra_ports=c.extra_ports))
        return env


def build_server(c: ComponentPlan, state: StateDir, context: Context) -> ManagedServer:
    """The (not yet started) server of component ``c``."""
    data = state.data(c.name)
    if c.launcher == "postgres":
        # Small shared buffers: the sandbox runs one instance for every service database.
        return EmbeddedPostgres(data, c.port or 0, settings={"shared_buffers": "64MB", "max_connections": "200"})
    if c.launcher == "redis":
        return EmbeddedRedis(data, c.port or 0)
    if c.launcher == "nats":
        return EmbeddedNats(data, c.port or 0, c.extra_ports["monitor"])
    if c.launcher == "kafka":
        return EmbeddedKafka(data, c.port or 0)
    if c.launcher == "binary":
        from sandbox.runtimes.local.observability import build

        return build(c, context.plan, data, state.status_json)
    if c.launcher == "python" and c.module:
        # Feast installs itself into its own venv on first use (~30 s with a warm pip cache).
        timeout = 240.0 if c.kind == "feature-store" else 60.0
        return PythonModuleServer(
            data, c.name, c.module, c.port or 0, context.render_env(c), health_path=c.health_path, start_timeout=timeout
        )
    raise ValueError(f"{c.name}: no way to run launcher '{c.launcher}'")


def after_start(c: ComponentPlan, server: ManagedServer) -> Callable[[], None] | None:
    """One-off set-up once a server is ready: databases, topics."""
    if isinstance(server, EmbeddedKafka):
        return lambda: server.create_topics(PLATFORM_TOPICS, partitions=1)
    return None
