"""The running platform as scenarios see it: service URLs from the runtime's status, tokens, HTTP, venue signing.

Nothing here hard-codes a port: :func:`connect` asks the chosen runtime for its
status and takes each component's URL (or port) from it, so scenarios run
against either runtime and any sandbox name.
"""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx

from sandbox.errors import EnvironmentProblem, SandboxError
from sandbox.venue.trading.signing import sign

#: what a scenario run needs running
REQUIRED = ("kraken-venue", "oms-service", "auth-service", "risk-service", "policy-service", "secrets-service",
            "universe-service", "capital-allocator", "fees-service", "kafka")


class NotUp(EnvironmentProblem):
    """The platform (or a component scenarios need) is not running."""


@dataclass
class Platform:
    """URLs of the running components, the runtime that runs them, and the admin's credentials."""

    sandbox: str
    urls: dict[str, str]
    kafka: str
    admin_password: str
    runtime: Any = None
    kafka_relay: list[str] | None = None
    """An argv streaming the OMS topics from the sandbox's network when the host cannot reach ``kafka``."""
    _token: str | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _nonce_lock: threading.Lock = field(default_factory=threading.Lock)
    _last_nonce: int = 0
    _held: set[str] = field(default_factory=set)

    def url(self, service: str) -> str:
        """Base URL of ``service``."""
        try:
            return self.urls[service]
        except KeyError as exc:
            raise NotUp(f"{service} is not running in sandbox '{self.sandbox}'",
                        hint=f"`aether-sandbox up --name {self.sandbox}`") from exc

    def client(self) -> httpx.Client:
        """A fresh HTTP client (one per scenario thread)."""
        return httpx.Client(timeout=30.0)

    def admin_token(self, http: httpx.Client, refresh: bool = False) -> str:
        """The bootstrap admin's bearer token (one login per run)."""
        with self._lock:
            if self._token is None or refresh:
                answer = http.post(self.url("auth-service") + "/v1/login",
                                   json={"username": "admin", "password": self.admin_password})
                if answer.status_code != 200:
                    raise NotUp(f"cannot log in as the bootstrap admin: {answer.status_code} {answer.text[:200]}",
                                hint="the sandbox's credentials do not match its auth-service")
                self._token = answer.json()["access_token"]
            return self._token

    def nonce(self) -> int:
        """A strictly increasing nonce (microseconds) shared by every scenario thread."""
        with self._nonce_lock:
            self._last_nonce = max(self._last_nonce + 1, time.time_ns() // 1000)
            return self._last_nonce

    def venue_private(self, http: httpx.Client, key: str, secret: str, method: str,
                      params: dict[str, Any]) -> dict[str, Any]:
        """One signed private call to the venue: ``{"error": [...], "result": ...}`` (lost answers as errors)."""
        path = f"/0/private/{method}"
        body = urllib.parse.urlencode({"nonce": str(self.nonce()), **{k: _form(v) for k, v in params.items()}})
        nonce = urllib.parse.parse_qs(body)["nonce"][0]
        headers = {"API-Key": key, "API-Sign": sign(path, nonce, body, secret),
                   "Content-Type": "application/x-www-form-urlencoded"}
        try:
            answer = http.post(self.url("kraken-venue") + path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return {"error": [f"transport:{type(exc).__name__}"]}
        if answer.status_code != 200:
            return {"error": [f"http:{answer.status_code}"]}
        return answer.json()

    def restart(self, component: str, kill: bool, timeout_s: float) -> dict[str, Any]:
        """Restart ``component``: with ``kill``, the runtime SIGKILLs its process (a crash) and its restart
        policy brings it back; without (or when the policy will not), the runtime's ``restart``."""
        before = None
        if kill:
            try:
                before = self.runtime.kill(component)
            except SandboxError as exc:
                raise NotUp(f"cannot kill {component}: {exc}") from exc
            if self._restarted_by_runtime(component, before, timeout_s):
                return {"killed": True, "restarted_by": "runtime"}
        try:
            status = self.runtime.restart(component)
        except SandboxError as exc:
            raise NotUp(f"cannot restart {component}: {exc}") from exc
        return {"killed": before is not None, "restarted_by": "restart", "state": status.state}

    def _restarted_by_runtime(self, component: str, before: int, timeout_s: float) -> bool:
        """Wait until the runtime runs ``component`` again under a new PID, healthy (False: it will not)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            c = next(c for c in self.runtime.status().components if c.name == component)
            if c.pid and c.pid != before and c.state == "running" and c.health == "healthy":
                return True
            if c.state == "failed" or (c.state == "crashed" and "not restarted" in (c.detail or "")):
                return False  # the runtime's restart budget is spent: restart it explicitly
            time.sleep(0.2)
        return False

    def stop(self, component: str) -> None:
        """Take ``component`` down until :meth:`start`: the runtime stops it and holds it (no restarts),
        so its port refuses connections (a crashed dependency) for exactly as long as the scenario says."""
        try:
            self.runtime.stop(component)
        except SandboxError as exc:
            raise NotUp(f"cannot stop {component}: {exc}") from exc
        self._held.add(component)
        url = urllib.parse.urlsplit(self.url(component))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # the port closes once the process is gone
            try:
                with socket.create_connection((url.hostname or "127.0.0.1", url.port or 80), timeout=0.5):
                    pass
            except OSError:
                return
            time.sleep(0.05)
        raise NotUp(f"{component} still accepts connections 10 s after it was stopped")

    def start(self, component: str, timeout_s: float) -> dict[str, Any]:
        """Undo :meth:`stop`: the runtime starts the component again; wait until it is healthy."""
        if component not in self._held:
            raise NotUp(f"{component} was not stopped by this scenario")
        try:
            status = self.runtime.start(component, timeout=timeout_s)
        except SandboxError as exc:
            raise NotUp(f"cannot start {component}: {exc}") from exc
        self._held.discard(component)
        return {"restarted_by": "start", "state": status.state}


def _form(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def connect(sandbox: str = "default", runtime: str = "auto", required: tuple[str, ...] = REQUIRED) -> Platform:
    """The running platform of ``sandbox``; :class:`NotUp` (hint: ``aether-sandbox up``) when it is not."""
    from sandbox.runtimes.factory import RuntimeChoice, choose
    from sandbox.spec.loader import default_spec

    rt, _ = choose(default_spec(), RuntimeChoice(runtime), sandbox)
    status = rt.status()
    by_name = {c.name: c for c in status.components}
    missing = [f"{n}: {by_name[n].state if n in by_name else 'not in this sandbox'}" for n in required
               if n not in by_name or by_name[n].state != "running" or not (by_name[n].url or by_name[n].port)]
    if missing:
        raise NotUp(f"sandbox '{sandbox}' is not running what scenarios need: " + "; ".join(missing),
                    hint=f"run `aether-sandbox up{'' if sandbox == 'default' else ' --name ' + sandbox}` "
                         "(the full profile) and try again")
    urls = {c.name: (c.url or f"http://127.0.0.1:{c.port}").rstrip("/") for c in status.components
            if c.state == "running" and (c.url or c.port) and c.name != "kafka"}
    kafka = by_name["kafka"]
    creds, _ = rt.state.credentials()  # both runtimes keep the sandbox's credentials in its state directory
    platform = Platform(sandbox, urls, f"127.0.0.1:{kafka.port}", creds["bootstrap_admin_password"], runtime=rt)
    relay = getattr(rt, "kafka_relay", None)
    if relay is not None and (found := relay("sandbox.scenarios.events")) is not None:
        platform.kafka, platform.kafka_relay = found  # the broker is reachable from the sandbox's network only
    return platform


def new_password() -> str:
    """A password for a scenario's own platform user."""
    return base64.urlsafe_b64encode(secrets.token_bytes(18)).decode()
