"""Fixtures for service tests: run services as subprocesses, and auth helpers.

``start_service(name, env)`` runs ``python -m sandbox.services.<name>`` on a free
loopback port, waits for ``/healthz`` (the last log lines in the failure) and
stops it by PID when the test ends. ``auth_service`` is one auth-service for the
session (own database); ``admin_token``, ``make_user`` and ``service_token``
talk to it over HTTP. Other services started with ``start_service`` are wired
to it by default (AETHER_AUTH_URL, the session Redis, a service account).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.infra.ports import free_port
from sandbox.infra.wait import wait_until

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT_S = 40.0
STOP_TIMEOUT_S = 15.0
LOG_TAIL = 40
#: Service prefixes whose env must not leak from the developer's shell into a test service.
_ENV_PREFIXES = (
    "AETHER_", "AUTH_", "CONFIG_", "SECRETS_", "UNIVERSE_", "FEES_", "KRAKEN_",
    "CAPITAL_", "POLICY_", "RISK_", "OMS_", "STRATEGY_", "INGEST_",
)
#: Service accounts registered in the session auth-service (one per service, plus tests).
SERVICE_CLIENTS = (
    "test-client", "config-service", "secrets-service", "universe-service", "fees-service", "kit-probe",
    "policy-service", "risk-service", "oms-service", "strategy-orchestrator", "capital-allocator",
)


@dataclass
class RunningService:
    """A service subprocess: its base URL, PID and log file."""

    url: str
    pid: int
    log_path: Path
    name: str = ""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def log_tail(self, lines: int = LOG_TAIL) -> list[str]:
        """The last lines of the service's log."""
        try:
            return self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return []

    def is_running(self) -> bool:
        """Whether the process is still alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self) -> int | None:
        """SIGTERM by PID, SIGKILL after a grace period; returns the exit code (idempotent)."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                proc.wait(5)
        return proc.returncode


@dataclass
class AuthService(RunningService):
    """The session auth-service plus what tests need to use it."""

    admin_password: str = ""
    service_accounts: dict[str, str] = field(default_factory=dict, repr=False)
    database: str = ""
    signing_key_passphrase: str = ""


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def launch_service(name: str, env: dict[str, str], log_dir: Path, *, timeout: float = START_TIMEOUT_S) -> RunningService:
    """Start ``python -m sandbox.services.<name>`` and wait until ``/healthz`` answers 200."""
    full = {**_base_env(), "AETHER_HOST": "127.0.0.1", **env}
    full.setdefault("AETHER_PORT", str(free_port()))
    full.setdefault("AETHER_SERVICE_NAME", f"{name}-service")
    url = f"http://127.0.0.1:{full['AETHER_PORT']}"
    log_path = Path(tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=log_dir)[1])
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", f"sandbox.services.{name}"],
            env=full, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    svc = RunningService(url=url, pid=proc.pid, log_path=log_path, name=name, env=full, process=proc)

    def ready() -> bool | str:
        if proc.poll() is not None:
            raise RuntimeError(
                f"{name} exited with code {proc.returncode} during start-up; last log lines:\n"
                + "\n".join(svc.log_tail())
            )
        try:
            resp = httpx.get(f"{url}/healthz", timeout=2.0)
        except httpx.TransportError as exc:
            return f"{type(exc).__name__}: {exc}"
        return True if resp.status_code == 200 else f"HTTP {resp.status_code}: {resp.text[:300]}"

    try:
        wait_until(ready, timeout=timeout, interval=0.1, what=f"{name} /healthz", log_tail=svc.log_tail)
    except BaseException:
        svc.stop()
        raise
    return svc


class _Launcher:
    """Starts services and stops every one it started, in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[RunningService] = []

    def start(self, name: str, env: dict[str, str]) -> RunningService:
        svc = launch_service(name, env, self.log_dir)
        self.started.append(svc)
        return svc

    def stop_all(self) -> None:
        for svc in reversed(self.started):
            svc.stop()
        self.started.clear()


@pytest.fixture(scope="session")
def service_log_dir(infra_root: Path) -> Path:
    """Where service logs go (removed with the infra root at the end of the session)."""
    path = infra_root / "service-logs"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def service_accounts() -> dict[str, str]:
    """client_id -> secret of the service accounts registered in the session auth-service."""
    return {cid: secrets.token_urlsafe(24) for cid in SERVICE_CLIENTS}


@pytest.fixture(scope="session")
def auth_env_factory(postgres: Any, redis_server: Any, service_accounts: dict[str, str]) -> Callable[..., dict[str, str]]:
    """Function: the env for an auth-service on database ``dbname`` (created) and Redis db ``redis_db``."""
    import json

    def make(dbname: str, *, redis_db: int = 0, admin_password: str | None = None, **extra: str) -> dict[str, str]:
        postgres.create_database(dbname)
        redis_url = redis_server.url.rsplit("/", 1)[0] + f"/{redis_db}"
        return {
            "AETHER_SERVICE_NAME": "auth-service",
            "AUTH_DATABASE_URL": postgres.dsn(dbname),
            "AUTH_REDIS_URL": redis_url,
            "AETHER_SESSION_REDIS_URL": redis_url,
            "AUTH_BOOTSTRAP_ADMIN_PASSWORD": admin_password or secrets.token_urlsafe(18),
            "AUTH_SERVICE_ACCOUNTS": json.dumps(service_accounts),
            "AUTH_SIGNING_KEY_PASSPHRASE": secrets.token_urlsafe(18),
            **extra,
        }

    return make


@pytest.fixture(scope="session")
def auth_service(
    auth_env_factory: Callable[..., dict[str, str]], service_log_dir: Path, service_accounts: dict[str, str]
) -> Iterator[AuthService]:
    """One auth-service for the session, on its own database ``auth_it``."""
    env = auth_env_factory("auth_it")
    svc = launch_service("auth", env, service_log_dir)
    auth = AuthService(
        url=svc.url, pid=svc.pid, log_path=svc.log_path, name="auth", env=svc.env, process=svc.process,
        admin_password=env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"], service_accounts=dict(service_accounts),
        database="auth_it", signing_key_passphrase=env["AUTH_SIGNING_KEY_PASSPHRASE"],
    )
    try:
        yield auth
    finally:
        auth.stop()


@pytest.fixture
def start_service(request: pytest.FixtureRequest, service_log_dir: Path) -> Iterator[Callable[[str, dict[str, str]], RunningService]]:
    """Factory: ``start_service(name, env)`` -> RunningService; stopped by PID when the test ends.

    Unless ``env`` sets them: the session Redis as AETHER_SESSION_REDIS_URL, and
    (for services other than auth) the session auth-service as AETHER_AUTH_URL
    with the ``<name>-service`` account as AETHER_SERVICE_CLIENT_ID/SECRET.
    """
    launcher = _Launcher(service_log_dir)

    def start(name: str, env: dict[str, str] | None = None) -> RunningService:
        env = dict(env or {})
        if "AETHER_SESSION_REDIS_URL" not in env:
            if name == "auth" and "AUTH_REDIS_URL" in env:
                env["AETHER_SESSION_REDIS_URL"] = env["AUTH_REDIS_URL"]
            else:
                env["AETHER_SESSION_REDIS_URL"] = request.getfixturevalue("redis_server").url
        if name != "auth" and "AETHER_AUTH_URL" not in env:
            auth: AuthService = request.getfixturevalue("auth_service")
            env["AETHER_AUTH_URL"] = auth.url
            client_id = f"{name}-service"
            if client_id in auth.service_accounts and "AETHER_SERVICE_CLIENT_ID" not in env:
                env["AETHER_SERVICE_CLIENT_ID"] = client_id
                env["AETHER_SERVICE_CLIENT_SECRET"] = auth.service_accounts[client_id]
        return launcher.start(name, env)

    try:
        yield start
    finally:
        launcher.stop_all()


@pytest.fixture(scope="module")
def start_service_shared(service_log_dir: Path) -> Iterator[Callable[[str, dict[str, str]], RunningService]]:
    """Factory like ``start_service`` but stopping at the end of the module (no defaults filled in).

    For a service several tests share, e.g. one instance a fuzz test hammers.
    """
    launcher = _Launcher(service_log_dir)
    try:
        yield launcher.start
    finally:
        launcher.stop_all()


def fuzz_openapi_check(
    base_url: str,
    token: str | None = None,
    *,
    max_examples: int = 30,
    skip: tuple[str, ...] = (),
    deadline_ms: int = 5000,
) -> list[str]:
    """Run schemathesis over every operation of a live ``/openapi.json``; return the failures (5xx).

    The pytest integration of schemathesis (``from_fixture``) breaks on pytest 9
    (it sets ``node._nodeid``), so this drives hypothesis directly, one operation
    at a time. ``skip`` holds ``"METHOD /path"`` or ``"/path"`` entries.
    """
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        if label in skip or operation.path in skip:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=max_examples, deadline=deadline_ms, derandomize=True, database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=[not_a_server_error], timeout=10)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, report them together
            failures.append(f"{label}: {exc}")
    return failures


@pytest.fixture
def fuzz_openapi() -> Callable[..., None]:
    """Function: ``fuzz_openapi(base_url, token, max_examples=30, skip=())`` asserts no operation answers 5xx."""

    def run(base_url: str, token: str | None = None, **kwargs: Any) -> None:
        failures = fuzz_openapi_check(base_url, token, **kwargs)
        assert not failures, "server errors found:\n\n" + "\n\n".join(failures)

    return run


def login(base_url: str, username: str, password: str) -> dict[str, Any]:
    """POST /v1/login; the token pair (raises on a non-200 answer)."""
    resp = httpx.post(f"{base_url}/v1/login", json={"username": username, "password": password}, timeout=10)
    resp.raise_for_status()
    return resp.json()


_admin_cache: dict[str, tuple[str, float]] = {}


@pytest.fixture
def admin_token(auth_service: AuthService) -> str:
    """An access token of the bootstrap admin (cached; renewed when close to expiry)."""
    cached = _admin_cache.get(auth_service.url)
    if cached and cached[1] - time.time() > 120:
        token = cached[0]
        # Still live? (a test may have revoked sessions of admin)
        probe = httpx.get(f"{auth_service.url}/v1/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        if probe.status_code == 200:
            return token
    pair = login(auth_service.url, "admin", auth_service.admin_password)
    _admin_cache[auth_service.url] = (pair["access_token"], time.time() + pair["expires_in"])
    return pair["access_token"]


@pytest.fixture
def make_user(auth_service: AuthService, admin_token: str) -> Callable[..., tuple[str, str, str]]:
    """Factory: ``make_user(role_or_roles)`` -> (username, password, access token) of a new user."""

    def make(role: str | list[str] | tuple[str, ...] = "viewer") -> tuple[str, str, str]:
        roles = [role] if isinstance(role, str) else list(role)
        username = f"u{secrets.token_hex(5)}"
        password = secrets.token_urlsafe(16)
        resp = httpx.post(
            f"{auth_service.url}/v1/users",
            json={"username": username, "password": password, "roles": roles},
            headers={"Authorization": f"Bearer {admin_token}"}, timeout=10,
        )
        assert resp.status_code == 201, resp.text
        return username, password, login(auth_service.url, username, password)["access_token"]

    return make


@pytest.fixture
def service_token(auth_service: AuthService) -> Callable[..., str]:
    """Factory: ``service_token(client_id="test-client", scope=[])`` -> a service access token."""

    def get(client_id: str = "test-client", scope: list[str] | None = None) -> str:
        resp = httpx.post(
            f"{auth_service.url}/v1/service-tokens",
            json={"client_id": client_id, "client_secret": auth_service.service_accounts[client_id], "scope": scope or []},
            timeout=10,
        )
        assert resp.status_code == 200, resp.text
        return resp.json()["access_token"]

    return get


@pytest.fixture
def api_server_errors() -> Callable[[str], list[str]]:
    """``api_server_errors(metrics_text)``: the ``http_requests_total`` lines of API routes that answered 5xx.

    ``/healthz`` is left out: it answers 503 while a service starts (readiness, by design).
    """

    def find(metrics: str) -> list[str]:
        return [
            line for line in metrics.splitlines()
            if line.startswith("http_requests_total{") and 'route="/healthz"' not in line and 'status="5' in line
        ]

    return find
