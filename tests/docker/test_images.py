"""Images of the docker runtime: override resolution, the healthcheck helper, and the offline build.

The first half needs no engine: image overrides (environment and file) as
``resolve_images`` resolves them, their errors, and the healthcheck against a
real HTTP server.  The second half (marker ``docker``) builds the offline image
set on the real engine (cached: a run after the first only checks it is up to
date), checks every image runs its server binary, that a rebuild is all
cached, that concurrent builds wait for each other, and ``images list``.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandbox.errors import InvalidInput
from sandbox.runtimes.docker import healthcheck
from sandbox.runtimes.docker.images import (
    env_var,
    offline_images,
    overrides_file,
    resolve_images,
    unavailable_offline,
)
from sandbox.features.venv import FEAST_VERSION
from sandbox.runtimes.docker.build import OFFLINE_POSTGRES_MAJOR, postgres_client_major
from sandbox.spec.loader import default_spec

SPEC = default_spec()
PROJECT_OFFLINE = SPEC.component("auth-service").images.offline


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """An environment with an empty config directory, so a user's own images.yaml never leaks in."""
    return {"AETHER_SANDBOX_CONFIG_DIR": str(tmp_path / "config"), **extra}


# ---------------------------------------------------------------- overrides (no engine)


def test_without_overrides_each_set_uses_the_spec_images(tmp_path: Path) -> None:
    official = resolve_images(SPEC, offline=False, env=_env(tmp_path))
    offline = resolve_images(SPEC, offline=True, env=_env(tmp_path))
    assert official["timescaledb"].image == SPEC.component("timescaledb").images.default
    assert official["timescaledb"].source == "official"
    assert offline["kafka"].image == SPEC.component("kafka").images.offline
    assert offline["kafka"].source == "offline"
    assert {c.name for c in SPEC.components if c.images} == set(official)
    # Grafana, Loki and Tempo have no offline image: left out, with the spec's reason.
    missing = unavailable_offline(SPEC, env=_env(tmp_path))
    assert set(missing) == {"grafana", "loki", "tempo", "promtail"}
    assert not set(missing) & set(offline)
    assert "Grafana" in missing["grafana"]


def test_project_image_pg_client_follows_the_timescaledb_image(tmp_path: Path, monkeypatch) -> None:
    """The backup job's pg_dump must be the server's major: the build asks for the major of the image in use."""
    monkeypatch.setenv("AETHER_SANDBOX_CONFIG_DIR", str(tmp_path / "config"))
    assert postgres_client_major(SPEC, offline=True) == OFFLINE_POSTGRES_MAJOR
    assert SPEC.component("timescaledb").images.default.endswith("-pg16")
    assert postgres_client_major(SPEC, offline=False) == 16
    monkeypatch.setenv(env_var("timescaledb"), "registry.example.com/timescale/timescaledb-ha:pg17.2-ts2.18")
    assert postgres_client_major(SPEC, offline=False) is None  # the tag does not end its major with -pgNN
    monkeypatch.setenv(env_var("timescaledb"), "registry.example.com/timescaledb:2.19.0-pg17")
    assert postgres_client_major(SPEC, offline=True) == 17


def test_env_override_replaces_both_sets(tmp_path: Path) -> None:
    env = _env(tmp_path, AETHER_SANDBOX_IMAGE_AUTH_SERVICE="registry.example.com/aether/auth:2.3")
    for offline in (False, True):
        choice = resolve_images(SPEC, offline=offline, env=env)["auth-service"]
        assert (choice.image, choice.source, choice.overridden) == ("registry.example.com/aether/auth:2.3", "override:env", True)
        assert resolve_images(SPEC, offline=offline, env=env)["oms-service"].source in ("official", "offline")
    assert env_var("kraken-ws-ingest") == "AETHER_SANDBOX_IMAGE_KRAKEN_WS_INGEST"


def test_file_override_per_set_and_env_wins(tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.mkdir()
    (config / "images.yaml").write_text(
        "images:\n"
        "  auth-service: team/auth:1\n"
        "  timescaledb:\n"
        "    offline: team/postgres-offline:15\n"
        "  grafana: {offline: team/grafana:11}\n"
    )
    env = _env(tmp_path)
    assert overrides_file(env) == config / "images.yaml"
    official = resolve_images(SPEC, offline=False, env=env)
    offline = resolve_images(SPEC, offline=True, env=env)
    assert (official["auth-service"].image, official["auth-service"].source) == ("team/auth:1", "override:file")
    assert offline["auth-service"].image == "team/auth:1"
    assert official["timescaledb"].source == "official"
    assert (offline["timescaledb"].image, offline["timescaledb"].source) == ("team/postgres-offline:15", "override:file")
    # An override gives a component without an offline image one.
    assert offline["grafana"].image == "team/grafana:11"
    assert "grafana" not in unavailable_offline(SPEC, env=env)
    both = resolve_images(SPEC, offline=True, env={**env, env_var("auth-service"): "team/auth:2"})
    assert (both["auth-service"].image, both["auth-service"].source) == ("team/auth:2", "override:env")


def test_images_file_named_by_variable(tmp_path: Path) -> None:
    named = tmp_path / "team-images.yaml"
    named.write_text("images:\n  redis: team/redis:7\n")
    env = _env(tmp_path, AETHER_SANDBOX_IMAGES=str(named))
    assert resolve_images(SPEC, offline=False, env=env)["redis"].image == "team/redis:7"
    with pytest.raises(InvalidInput, match="not a file"):
        resolve_images(SPEC, offline=False, env=_env(tmp_path, AETHER_SANDBOX_IMAGES=str(tmp_path / "absent.yaml")))


def test_unknown_component_in_file_names_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text("images:\n  auth-service: team/auth:1\n  auth-servce: team/auth:1\n")
    with pytest.raises(InvalidInput) as caught:
        resolve_images(SPEC, offline=False, env=_env(tmp_path, AETHER_SANDBOX_IMAGES=str(path)))
    assert str(path) in str(caught.value)
    assert caught.value.problems == [f"{path}: images.auth-servce: unknown component 'auth-servce'"]
    assert "auth-service" in caught.value.hint


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("images:\n  redis: 'Not An Image!'\n", "images.redis: 'Not An Image!' is not an image reference"),
        ("images:\n  redis: {offline: team/redis:7, online: x/y}\n", "unknown image set(s) online"),
        ("images:\n  redis: [a, b]\n", "is not an image reference"),
        ("redis: team/redis:7\n", "expected one top-level key `images`, found redis"),
        ("images: [redis]\n", "expected a mapping"),
        ("images:\n  redis: team/redis:7\n bad indent: [\n", "not valid YAML"),
    ],
)
def test_file_mistakes_are_errors(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(text)
    with pytest.raises(InvalidInput) as caught:
        resolve_images(SPEC, offline=True, env=_env(tmp_path, AETHER_SANDBOX_IMAGES=str(path)))
    assert expected in str(caught.value) + "\n".join(caught.value.problems)
    assert str(path) in str(caught.value) + "\n".join(caught.value.problems)


def test_env_mistakes_are_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="AETHER_SANDBOX_IMAGE_AUTH: no component"):
        resolve_images(SPEC, offline=False, env=_env(tmp_path, AETHER_SANDBOX_IMAGE_AUTH="team/auth:1"))
    with pytest.raises(InvalidInput, match="AETHER_SANDBOX_IMAGE_REDIS: 'redis latest' is not an image reference"):
        resolve_images(SPEC, offline=False, env=_env(tmp_path, AETHER_SANDBOX_IMAGE_REDIS="redis latest"))
    # An empty variable is no override (as compose treats ${VAR:-default}).
    assert resolve_images(SPEC, offline=False, env=_env(tmp_path, AETHER_SANDBOX_IMAGE_REDIS=""))["redis"].source == "official"


# ---------------------------------------------------------------- healthcheck helper (no engine)


@pytest.fixture()
def http_server() -> Iterator[str]:
    """A loopback HTTP server answering /ok with 200 and anything else with 503."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(200 if self.path == "/ok" else 503)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_exit_codes(http_server: str) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "sandbox.runtimes.docker.healthcheck", *args],
                              capture_output=True, text=True, timeout=30)

    assert run(f"{http_server}/ok").returncode == 0
    unhealthy = run(f"{http_server}/healthz", "--timeout", "2")
    assert (unhealthy.returncode, unhealthy.stderr.strip()) == (1, f"{http_server}/healthz answered HTTP 503")
    refused = run(f"http://127.0.0.1:{_unused_port()}/healthz")
    assert refused.returncode == 1 and "did not answer" in refused.stderr
    assert run().returncode == 2
    assert healthcheck.probe(f"{http_server}/ok") is None


def _unused_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- the offline image set (real engine)


def _engine_or_skip() -> None:
    from sandbox.runtimes import engine

    try:
        engine.engine_info(timeout=3.0)
    except engine.EngineUnreachable as exc:
        pytest.skip(f"no Docker engine answers: {exc}")


@pytest.fixture(scope="module")
def offline_build():
    """The offline image set, built (cold: minutes) or found up to date."""
    _engine_or_skip()
    from sandbox.runtimes.docker.build import build_images

    return build_images(SPEC, offline=True)


def _docker_run(image: str, *args: str, entrypoint: str | None = None) -> str:
    argv = ["docker", "run", "--rm", "--network", "none"]
    if entrypoint:
        argv += ["--entrypoint", entrypoint]
    out = subprocess.run([*argv, image, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, f"{image} {args}: exit {out.returncode}: {out.stderr[-800:]}"
    return out.stdout + out.stderr


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_offline_build_produces_every_offline_image(offline_build) -> None:
    from sandbox.runtimes.docker.images import offline_available

    built = {image.name for image in offline_build.images}
    assert set(offline_images(SPEC)) <= built
    assert offline_available(SPEC)
    assert set(offline_build.unavailable) == {"grafana", "loki", "tempo", "promtail"}
    differences = {c: image.differences for image in offline_build.images for c in image.components}
    assert "NO TimescaleDB extension" in differences["timescaledb"]
    assert "Tansu" in differences["kafka"] and "not Apache Kafka" in differences["kafka"]
    for image in offline_build.images:
        assert image.size_bytes > 0 and image.status in ("built", "cached")


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_project_images_carry_the_checkout_they_were_built_from(offline_build) -> None:
    from sandbox.runtimes.docker.api import Engine
    from sandbox.runtimes.docker.build import SOURCE_LABEL, source_digest, source_root, stale_project_images

    listed = Engine().get("/images/json")
    labels = {tag: image.get("Labels") or {} for image in listed for tag in image.get("RepoTags") or []}
    project = {SPEC.component(c).images.offline for c in ("auth-service", "feast")}
    assert {labels[tag].get(SOURCE_LABEL) for tag in project} == {source_digest(source_root())}
    assert stale_project_images(SPEC, project, listed, offline=True) == []


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
@pytest.mark.parametrize(
    ("component", "args", "entrypoint", "expected"),
    [
        ("auth-service", ("python", "-c", "import sandbox.services.auth, os, sys; print(sys.version_info[:2], os.getuid())"),
         None, "(3, 11) 10001"),
        ("auth-service", ("sandbox.runtimes.docker.healthcheck",), None, None),
        # the nightly backup job's client, of the offline server's major (the job refuses another)
        ("workflow-scheduler", ("python", "-c", "from sandbox.workflows.backup import client_binary; "
                                f"print(client_binary('pg_dump', {OFFLINE_POSTGRES_MAJOR}))"),
         None, f"/usr/lib/postgresql/{OFFLINE_POSTGRES_MAJOR}/bin/pg_dump"),
        ("timescaledb", ("postgres", "--version"), None, f"PostgreSQL) {OFFLINE_POSTGRES_MAJOR}."),
        ("redis", ("redis-server", "--version"), None, "Redis server v=7.0"),
        ("nats", ("nats-server", "--version"), None, "nats-server: v"),
        ("kafka", ("--version",), None, "tansu "),
        ("prometheus", ("--version",), None, "prometheus, version 2."),
        ("alertmanager", ("--version",), None, "alertmanager, version 0."),
        ("nats", ("--help",), "wget", "BusyBox"),
        # the feast target: the pinned Feast venv, found by the component, and the feature repository's sources
        ("feast", ("python", "-c", "from sandbox.features import venv, repo; "
                   "print(venv.installed(), venv.venv_dir(), sorted(p.name for p in repo.source_dir().iterdir()))"),
         None, "True /opt/feast ['.feastignore', 'feature_store.yaml.template', 'features.py', 'pipeline.py']"),
        ("feast", ("/opt/feast/bin/feast", "version"), None, f'"{FEAST_VERSION}"'),
    ],
)
def test_each_offline_image_runs_its_server(offline_build, component, args, entrypoint, expected) -> None:
    image = SPEC.component(component).images.offline
    if expected is None:
        # The healthcheck helper's usage error (exit 2) proves the module is installed and runs.
        out = subprocess.run(["docker", "run", "--rm", "--network", "none", image, *args],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 2 and "usage:" in out.stderr
        return
    assert expected in _docker_run(image, *args, entrypoint=entrypoint)


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_offline_postgres_initialises_like_the_official_image(offline_build) -> None:
    image = SPEC.component("timescaledb").images.offline
    name = f"aether-images-test-pg-{threading.get_ident()}"
    script = ("for i in $(seq 50); do pg_isready -q -h 127.0.0.1 && break; sleep 0.2; done; "
              "PGPASSWORD=secret psql -h 127.0.0.1 -U app -d orders -tAc "
              "\"select current_user, current_database(), count(*) from pg_extension where extname = 'timescaledb'\"")
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", "-e", "POSTGRES_USER=app",
                    "-e", "POSTGRES_PASSWORD=secret", "-e", "POSTGRES_DB=orders", image], check=True, capture_output=True)
    try:
        out = subprocess.run(["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True, timeout=60)
        assert out.stdout.strip().splitlines()[-1] == "app|orders|0", out.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_offline_redis_keeps_an_append_only_file(offline_build) -> None:
    image = SPEC.component("redis").images.offline
    name = f"aether-images-test-redis-{threading.get_ident()}"
    subprocess.run(["docker", "run", "-d", "--name", name, "--network", "none", image, "--appendonly", "yes"],
                   check=True, capture_output=True)
    try:
        script = ("for i in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done; "
                  "redis-cli set k v >/dev/null && redis-cli config get appendonly | tail -1 && ls /data/appendonlydir")
        out = subprocess.run(["docker", "exec", name, "sh", "-c", script], capture_output=True, text=True, timeout=60)
        lines = out.stdout.split()
        assert lines[0] == "yes" and any(f.endswith(".aof") for f in lines[1:]), out.stdout + out.stderr
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_second_build_is_cached(offline_build) -> None:
    """Build, then build again through the CLI: its JSON report marks every image cached."""
    from sandbox.runtimes.docker.build import build_images

    build_images(SPEC, offline=True)  # catches up with any source change since the module's first build
    out = subprocess.run([sys.executable, "-m", "sandbox.cli", "images", "build", "--offline", "--json"],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    report = json.loads(out.stdout)
    statuses = {image["name"]: image["status"] for image in report["images"]}
    assert set(offline_images(SPEC)) <= set(statuses)
    assert [name for name, status in statuses.items() if status != "cached"] == []


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_concurrent_builds_wait_for_the_lock(offline_build) -> None:
    from sandbox.runtimes.docker.build import build_images, build_lock, cache_dir

    lines: list[str] = []
    result: list = []
    with build_lock(cache_dir(), None):
        worker = threading.Thread(target=lambda: result.append(
            build_images(SPEC, offline=True, components=["redis"], progress=lines.append)))
        worker.start()
        worker.join(timeout=3)
        assert worker.is_alive(), "the second build did not wait for the lock"
    worker.join(timeout=300)
    assert not worker.is_alive()
    assert any("waiting" in line for line in lines)
    assert [i.status for i in result[0].images] == ["cached", "cached"]


@pytest.mark.docker
@pytest.mark.xdist_group("docker")
def test_images_list_and_offline_availability(offline_build, tmp_path: Path, monkeypatch) -> None:
    from sandbox.runtimes.docker.images import offline_available

    monkeypatch.setenv("AETHER_SANDBOX_CONFIG_DIR", str(tmp_path))
    out = subprocess.run([sys.executable, "-m", "sandbox.cli", "images", "list", "--json"],
                         capture_output=True, text=True, timeout=120)
    rows = json.loads(out.stdout)
    offline = {r["component"]: r for r in rows if r["set"] == "offline"}
    assert offline["redis"]["present"] is True and offline["redis"]["source"] == "offline"
    assert offline["grafana"]["image"] is None and offline["grafana"]["source"] == "unavailable"
    # An override to an image the engine lacks makes the offline set incomplete.
    from sandbox.doctor.checks import Status, check_images

    assert check_images(SPEC).status is Status.OK
    monkeypatch.setenv(env_var("redis"), "aether-sandbox/no-such-image:0")
    assert not offline_available(SPEC)
    check = check_images(SPEC)
    assert check.status is Status.FAIL and "aether-sandbox/no-such-image:0" in check.detail
    assert "aether-sandbox images build --offline" in check.fix
    monkeypatch.delenv(env_var("redis"))
    assert offline_available(SPEC)
    assert PROJECT_OFFLINE in {r["image"] for r in rows}
