"""Helpers of the oms-service integration tests (no tests here): the venue process, an OMS client, a Kafka tail.

The venue is the real trading venue (``sandbox.venue.trading``) in a subprocess
on a loopback port: ``python -m sandbox.venue.trading`` as the platform runs
it, or, for load and fuzz runs that must not meet Kraken's rate limits,
the same app built with ``rate_limits=False``.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from sandbox.infra.ports import free_port
from sandbox.infra.wait import wait_until

REPO = Path(__file__).resolve().parents[3]
ASSETPAIRS = REPO / "fixtures" / "kraken" / "assetpairs.json"

_UNLIMITED = """
import sys, uvicorn
from sandbox.venue.trading.app import create_trading_app
app = create_trading_app(sys.argv[1], seed=int(sys.argv[3]), rate_limits=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
            loop="uvloop", http="httptools")
"""


def bearer(token: str) -> dict[str, str]:
    """An Authorization header."""
    return {"Authorization": f"Bearer {token}"}


class PortTaken(Exception):
    """The venue could not bind its port: another process took it between the choice and the bind."""


@dataclass
class VenueProcess:
    """The trading venue in a subprocess (stopped by PID)."""

    log_dir: Path
    rate_limits: bool = True
    seed: int = 7
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> VenueProcess:
        """Start the venue; on a port another test's server took meanwhile (xdist workers), again on a new one."""
        for attempt in range(3):
            try:
                return self._start()
            except PortTaken:
                if attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self) -> VenueProcess:
        fd, name = tempfile.mkstemp(prefix="venue-trading-", suffix=".log", dir=self.log_dir)
        os.close(fd)
        self.log_path = Path(name)
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        env.pop("KRAKEN_CREDENTIALS_DIR", None)
        if self.rate_limits:
            cmd = [sys.executable, "-m", "sandbox.venue.trading", "--port", str(self.port), "--seed", str(self.seed),
                   "--assetpairs", str(ASSETPAIRS)]
        else:
            cmd = [sys.executable, "-c", _UNLIMITED, str(ASSETPAIRS), str(self.port), str(self.seed)]
        with open(name, "wb") as log:
            self.process = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)
        proc = self.process

        def ready() -> bool | str:
            if proc.poll() is not None:
                log_text = Path(name).read_text()
                if "address already in use" in log_text.lower():
                    raise PortTaken(self.port)
                raise RuntimeError(f"venue exited with {proc.returncode}: {log_text[-2000:]}")
            try:
                # /admin/trading: only the venue answers it (another server on a reused port answers /healthz too)
                return httpx.get(f"{self.url}/admin/trading", timeout=2).status_code == 200
            except httpx.TransportError as exc:
                return str(exc)

        try:
            wait_until(ready, timeout=30, interval=0.05, what="venue /healthz")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        resp = httpx.request(method, f"{self.url}/admin{path}", json=body, timeout=10)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def create_account(self, credentials_dir: Path, balances: dict[str, str] | None = None,
                       nonce_window: int = 0) -> dict[str, Any]:
        """A funded venue account whose key pair is written to ``credentials_dir`` (api_key, api_secret)."""
        key = secrets.token_urlsafe(42)
        secret = base64.b64encode(os.urandom(64)).decode()
        created = self.admin("POST", "/accounts", {
            "name": "oms-it", "balances": balances or {"ZUSD": "10000000", "XXBT": "1000", "XETH": "10000"},
            "api_key": key, "api_secret": secret, "nonce_window": nonce_window, "tier": "pro",
        })
        credentials_dir.mkdir(parents=True, exist_ok=True)
        (credentials_dir / "api_key").write_text(key + "\n")
        (credentials_dir / "api_secret").write_text(secret + "\n")
        return created

    def set_book(self, pair: str, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.admin("PUT", f"/book/{pair}", {"bids": bids, "asks": asks})

    def account(self, account_id: str) -> dict[str, Any]:
        return self.admin("GET", f"/accounts/{account_id}")

    def open_txids(self, account_id: str) -> set[str]:
        return {o["txid"] for o in self.account(account_id)["open"]}


class OmsApi:
    """Calls to one oms-service."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http = httpx.Client(base_url=url, timeout=20)

    def call(self, method: str, path: str, body: Any = None, token: str | None = None, **params: Any) -> httpx.Response:
        return self.http.request(method, path, json=body, params=params or None, headers=bearer(token or self.token))

    def place(self, token: str | None = None, **order: Any) -> httpx.Response:
        doc = {"account": "acct-1", "client_order_id": f"c-{secrets.token_hex(6)}", "symbol": "XBT/USD",
               "side": "buy", "type": "limit", "qty": "0.01", "price": "29000.0", **order}
        return self.call("POST", "/v1/orders", {k: v for k, v in doc.items() if v is not None}, token)

    def placed(self, **order: Any) -> dict[str, Any]:
        resp = self.place(**order)
        assert resp.status_code in (200, 201, 202), resp.text
        return resp.json()

    def order(self, order_id: str) -> dict[str, Any]:
        resp = self.call("GET", f"/v1/orders/{order_id}")
        assert resp.status_code == 200, resp.text
        return resp.json()

    def wait_state(self, order_id: str, *states: str, timeout: float = 20.0) -> dict[str, Any]:
        seen: dict[str, Any] = {}

        def check() -> bool | str:
            seen.update(self.order(order_id))
            return seen["state"] in states or f"state {seen['state']}"

        wait_until(check, timeout=timeout, interval=0.1, what=f"order {order_id} in {states}")
        return seen


class KafkaTail:
    """Collects every message of some topics from the beginning, in a background thread."""

    def __init__(self, kafka_broker: Any, topics: list[str]) -> None:
        from confluent_kafka import Consumer

        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._consumer = Consumer(kafka_broker.consumer_config(f"oms-it-{secrets.token_hex(4)}",
                                                               **{"enable.auto.commit": False}))
        self._consumer.subscribe(topics)
        self._thread = threading.Thread(target=self._run, name="kafka-tail", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            msg = self._consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                doc = json.loads(msg.value(), parse_float=Decimal)
            except ValueError:
                continue
            with self._lock:
                self.messages.append((msg.topic(), doc))

    def wait_for(self, predicate: Callable[[str, dict[str, Any]], bool], *, timeout: float = 30.0,
                 what: str = "a Kafka message") -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            with self._lock:
                found[:] = [doc for topic, doc in self.messages if predicate(topic, doc)]
            return bool(found)

        wait_until(check, timeout=timeout, interval=0.1, what=what)
        return found[0]

    def matching(self, predicate: Callable[[str, dict[str, Any]], bool]) -> list[dict[str, Any]]:
        with self._lock:
            return [doc for topic, doc in self.messages if predicate(topic, doc)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def oms_env(*, postgres: Any, redis_server: Any, kafka_broker: Any, nats_server: Any, venue: VenueProcess,
            credentials_dir: Path, database: str, topics: tuple[str, str], auth: Any, **extra: str) -> dict[str, str]:
    """The env of an oms-service on ``database`` (created) with the test-client service account."""
    postgres.create_database(database)
    redis_url = redis_server.url.rsplit("/", 1)[0] + "/3"
    return {
        "AETHER_SERVICE_NAME": "oms-service",
        "AETHER_AUTH_URL": auth.url,
        "AETHER_SESSION_REDIS_URL": redis_server.url,
        "AETHER_SERVICE_CLIENT_ID": "test-client",
        "AETHER_SERVICE_CLIENT_SECRET": auth.service_accounts["test-client"],
        "OMS_REDIS_URL": redis_url,
        "OMS_SIMULATION_DATABASE_URL": postgres.dsn(database),
        "OMS_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "OMS_NATS_URL": nats_server.url,
        "OMS_VENUE_URL": venue.url,
        "KRAKEN_CREDENTIALS_DIR": str(credentials_dir),
        "OMS_ORDERS_TOPIC": topics[0],
        "OMS_FILLS_TOPIC": topics[1],
        "OMS_POLL_INTERVAL_S": "1",
        **extra,
    }


def wait(check: Callable[[], bool | str], what: str, timeout: float = 20.0) -> None:
    """Poll ``check`` (True when done)."""
    wait_until(check, timeout=timeout, interval=0.1, what=what)


def now() -> float:
    return time.time()
