"""Rendering a component's environment from the spec's ``env`` templates, for any runtime.

The spec writes environments as templates (``"{postgres:auth}"``,
``"{url:universe-service}"``, ``"{kafka_bootstrap}"`` ...).  What a placeholder
becomes depends on where the component runs: the local runtime points at
loopback ports, the docker runtime at in-network host names with secrets left
as compose ``${VARIABLES}``.  Each runtime supplies an :class:`AddressBook`;
:func:`render_env` is the one place that knows the placeholders and the
settings every sandbox component receives besides its templates.
"""

from __future__ import annotations

import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping

PLACEHOLDER = re.compile(r"\{([a-z_]+)(?::([A-Za-z0-9_.-]+))?\}")

#: Credentials every sandbox generates (see :meth:`sandbox.runtimes.local.state.StateDir.credentials`).
CREDENTIAL_NAMES = (
    "bootstrap_admin_password",
    "secrets_encryption_key",
    "service_client_id",
    "service_client_secret",
    "kraken_api_key",
    "kraken_api_secret",
)

#: ``{secret:NAME}`` placeholders and the credential each one names.
SECRETS = {"secrets-encryption-key": "secrets_encryption_key"}


class AddressBook(ABC):
    """Where a component reaches the rest of the platform, as seen from where it runs."""

    bind_host: str
    """The address components listen on (loopback locally, every interface in a container)."""
    sandbox: str
    """The sandbox name, passed to every component."""

    @abstractmethod
    def has(self, component: str) -> bool:
        """Whether ``component`` runs (and can be pointed at) in this sandbox."""

    @abstractmethod
    def postgres_dsn(self, database: str) -> str:
        """A ``postgresql://`` DSN of ``database`` with the superuser's credentials."""

    @abstractmethod
    def host_port(self, component: str, port: str = "") -> str:
        """``host:port`` of ``component``'s main port, or of its extra port named ``port``."""

    @abstractmethod
    def kraken_credentials_dir(self) -> str:
        """The directory holding the Kraken API credential files (``api_key``, ``api_secret``)."""

    @abstractmethod
    def cache_dir(self, component: str) -> str:
        """A writable scratch directory of ``component``."""

    @abstractmethod
    def credential(self, name: str) -> str:
        """One of :data:`CREDENTIAL_NAMES` (its value, or a reference the runtime resolves)."""

    def value(self, kind: str, arg: str | None, component: str) -> str:
        """The value of one ``{kind:arg}`` placeholder in ``component``'s environment."""
        if kind == "postgres":
            return self.postgres_dsn(arg or "postgres")
        if kind == "redis_url":
            return f"redis://{self.host_port('redis')}/0"
        if kind == "nats_url":
            return f"nats://{self.host_port('nats')}"
        if kind == "kafka_bootstrap":
            return self.host_port("kafka")
        if kind == "url":
            return f"http://{self.host_port(arg or '')}"
        if kind == "url_if_up":  # an optional peer: empty when it does not run in this sandbox
            return f"http://{self.host_port(arg or '')}" if self.has(arg or "") else ""
        if kind == "ws_url":
            return f"ws://{self.host_port(arg or '', 'ws')}"
        if kind == "kraken_credentials_dir":
            return self.kraken_credentials_dir()
        if kind == "cache_dir":
            return self.cache_dir(component)
        if kind == "secret" and arg in SECRETS:
            return self.credential(SECRETS[arg])
        raise KeyError(f"unknown placeholder {kind}:{arg}")


def fill(template: str, component: str, book: AddressBook) -> str:
    """``template`` with every placeholder replaced."""
    return PLACEHOLDER.sub(lambda m: book.value(m.group(1), m.group(2), component), template)


def render_env(
    component: str,
    templates: Mapping[str, str],
    book: AddressBook,
    *,
    port: int | None,
    extra_ports: Mapping[str, int] | None = None,
) -> dict[str, str]:
    """The environment of one sandbox component: its spec templates plus the common settings.

    Common settings: identity and bind address (``AETHER_SERVICE_NAME``,
    ``AETHER_HOST``, ``AETHER_PORT``, ``AETHER_<EXTRA>_PORT``), the sandbox
    name, the service account used for calls between services, the session
    Redis and the auth-service URL; auth-service also gets the bootstrap admin
    password and the service accounts it accepts.
    """
    env = {key: fill(template, component, book) for key, template in templates.items()}
    env.update(
        AETHER_SERVICE_NAME=component,
        AETHER_HOST=book.bind_host,
        AETHER_PORT=str(port),
        **{f"AETHER_{name.upper()}_PORT": str(p) for name, p in (extra_ports or {}).items()},
        AETHER_SANDBOX=book.sandbox,
        AETHER_SERVICE_CLIENT_ID=book.credential("service_client_id"),
        AETHER_SERVICE_CLIENT_SECRET=book.credential("service_client_secret"),
        PYTHONUNBUFFERED="1",
    )
    if book.has("redis"):
        env["AETHER_SESSION_REDIS_URL"] = book.value("redis_url", None, component)
    if component != "auth-service" and book.has("auth-service"):
        env["AETHER_AUTH_URL"] = book.value("url", "auth-service", component)
    if component == "auth-service":
        env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"] = book.credential("bootstrap_admin_password")
        env["AUTH_SERVICE_ACCOUNTS"] = json.dumps(
            {book.credential("service_client_id"): book.credential("service_client_secret")}
        )
    return env
