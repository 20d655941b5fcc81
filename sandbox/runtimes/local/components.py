"""Turning a :class:`ComponentPlan` into a running server.

Infrastructure runs on the embedded servers of :mod:`sandbox.infra`; the
sandbox's own components (services, venue, ingest, scheduler) run as
``python -m MODULE`` processes whose readiness is ``GET /healthz``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.nats import EmbeddedNats
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.process import ManagedServer
from sandbox.infra.redis import EmbeddedRedis
from sandbox.runtimes.local.plan import ComponentPlan, Plan
from sandbox.runtimes.local.state import StateDir

_PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([A-Za-z0-9_.-]+))?\}")

#: Kafka topics the platform uses; created explicitly (Tansu auto-creates with 4 partitions).
PLATFORM_TOPICS = ("oms.orders", "oms.fills", "risk.events")


class PythonComponent(ManagedServer):
    """One of the sandbox's own components: ``python -m MODULE`` with an HTTP health check."""

    name: ClassVar[str] = "component"

    def __init__(self, data_dir: Path, name: str, module: str, port: int, env: dict[str, str], **kwargs: Any) -> None:
        super().__init__(data_dir, **kwargs)
        self.name = name  # type: ignore[misc] - per instance: logs and PID files carry the component's name
        self.module = module
        self.port = port
        self.env = env

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.port}

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def popen_options(self) -> dict[str, Any]:
        return {"env": self.env}

    def ready(self) -> bool | str:
        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:  # noqa: S310 - loopback
                return response.status == 200 or f"/healthz answered {response.status}"
        except urllib.error.HTTPError as exc:
            return f"/healthz answered {exc.code}"
        except OSError as exc:
            return f"/healthz: {exc}"


class Context:
    """What component environments are rendered from: the running infrastructure."""

    def __init__(self, state: StateDir, plan: Plan, servers: dict[str, ManagedServer], creds: dict[str, str]) -> None:
        self.state = state
        self.plan = plan
        self.servers = servers
        self.creds = creds

    def _port(self, name: str) -> int:
        port = self.plan.get(name).port
        if port is None:
            raise KeyError(f"{name} has no port (not available here)")
        return port

    def value(self, kind: str, arg: str | None) -> str:
        """The value of one ``{placeholder}``."""
        if kind == "postgres":
            pg = self.servers["timescaledb"]
            assert isinstance(pg, EmbeddedPostgres)
            return pg.dsn(arg or "postgres")
        if kind == "redis_url":
            return f"redis://127.0.0.1:{self._port('redis')}/0"
        if kind == "nats_url":
            return f"nats://127.0.0.1:{self._port('nats')}"
        if kind == "kafka_bootstrap":
            return f"127.0.0.1:{self._port('kafka')}"
        if kind == "url":
            return f"http://127.0.0.1:{self._port(arg or '')}"
        if kind == "ws_url":
            target = self.plan.get(arg or "")
            return f"ws://127.0.0.1:{target.extra_ports.get('ws', target.port)}"
        if kind == "kraken_credentials_dir":
            return str(self.kraken_credentials_dir())
        if kind == "cache_dir":
            raise KeyError("cache_dir is per component")
        if kind == "secret" and arg == "secrets-encryption-key":
            return self.creds["secrets_encryption_key"]
        raise KeyError(f"unknown placeholder {kind}:{arg}")

    def kraken_credentials_dir(self) -> Path:
        """Kraken API credentials as files, the way Kubernetes projects /var/run/secrets/kraken."""
        directory = self.state.root / "secrets" / "kraken"
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key, field in (("api_key", "kraken_api_key"), ("api_secret", "kraken_api_secret")):
            path = directory / key
            if not path.exists():
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(self.creds[field])
        return directory

    def render_env(self, c: ComponentPlan) -> dict[str, str]:
        """The full environment of component ``c``: the spec's templates plus the common settings."""
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH")}
        cache = self.state.data(c.name) / "cache"

        def fill(match: re.Match[str]) -> str:
            kind, arg = match.group(1), match.group(2)
            if kind == "cache_dir":
                cache.mkdir(parents=True, exist_ok=True)
                return str(cache)
            return self.value(kind, arg)

        for key, template in c.env.items():
            env[key] = _PLACEHOLDER.sub(fill, template)
        env.update(
            AETHER_SERVICE_NAME=c.name,
            AETHER_HOST="127.0.0.1",
            AETHER_PORT=str(c.port),
            **{f"AETHER_{name.upper()}_PORT": str(port) for name, port in c.extra_ports.items()},
            AETHER_SANDBOX=self.state.name,
            AETHER_SERVICE_CLIENT_ID=self.creds["service_client_id"],
            AETHER_SERVICE_CLIENT_SECRET=self.creds["service_client_secret"],
            PYTHONUNBUFFERED="1",
        )
        if "redis" in self.servers:
            env["AETHER_SESSION_REDIS_URL"] = self.value("redis_url", None)
        if c.name != "auth-service" and self._has("auth-service"):
            env["AETHER_AUTH_URL"] = self.value("url", "auth-service")
        if c.name == "auth-service":
            env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"] = self.creds["bootstrap_admin_password"]
            env["AUTH_SERVICE_ACCOUNTS"] = json.dumps({self.creds["service_client_id"]: self.creds["service_client_secret"]})
        return env

    def _has(self, name: str) -> bool:
        try:
            return self.plan.get(name).port is not None
        except KeyError:
            return False


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
    if c.launcher == "python" and c.module:
        return PythonComponent(data, c.name, c.module, c.port or 0, context.render_env(c), start_timeout=60.0)
    raise ValueError(f"{c.name}: no way to run launcher '{c.launcher}'")


def after_start(c: ComponentPlan, server: ManagedServer) -> Callable[[], None] | None:
    """One-off set-up once a server is ready: databases, topics."""
    if isinstance(server, EmbeddedKafka):
        return lambda: server.create_topics(PLATFORM_TOPICS, partitions=1)
    return None
