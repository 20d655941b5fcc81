"""Locust users for every Aether service, driven by a run plan ``aether-sandbox load run`` writes.

Run only through ``aether-sandbox load run`` (it spawns ``python -m locust -f
loadtests/locustfile.py`` with ``AETHER_LOAD_PLAN`` pointing at the plan):
locust patches the standard library with gevent on import, so it lives in its
own process and never imports the ``sandbox`` package.  The plan (JSON, owner
only: it carries the run's tokens) holds the components' URLs, the set-up's
tokens, account, strategy and prices, each service's request mix, the
profile's stages and where to write the latency timeline.

Every request is named ``"<component> <METHOD> <path template>"``; a listener
buckets latencies per component and second into ``timeline-<pid>.jsonl`` in
the run directory (one file per locust process, merged afterwards, so
distributed runs are judged exactly as local ones).
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections import defaultdict
from itertools import count
from pathlib import Path

import gevent
from locust import FastHttpUser, LoadTestShape, constant_throughput, events

PLAN = json.loads(Path(os.environ["AETHER_LOAD_PLAN"]).read_text())
CTX = PLAN["context"]
URLS = CTX["urls"]
TOKENS = CTX["tokens"]
ACCOUNT, SYMBOL, STRATEGY = CTX["account"], CTX["symbol"], CTX["strategy"]
SYMBOL_PATH = SYMBOL.replace("/", "%2F")
PRICES = CTX.get("prices", {})
RUN_DIR = Path(PLAN["run_dir"])
_ids = count()


def _bearer(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def _uid(prefix: str) -> str:
    return f"{prefix}-{CTX['run_tag']}-{os.getpid()}-{next(_ids)}"


# ---- the latency timeline -------------------------------------------------------------------


def _bucket_ms(ms: float) -> int:
    """Locust's own rounding (two significant digits above 100 ms): a bounded histogram."""
    value = int(round(ms))
    if value < 100:
        return value
    if value < 1000:
        return int(round(value, -1))
    return int(round(value, -2))


class Timeline:
    """Per component and second: requests, failures and a latency histogram, flushed to JSON lines."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.buckets: dict[tuple[int, str], dict] = {}

    def record(self, component: str, ms: float, failed: bool) -> None:
        key = (int(time.time()), component)
        bucket = self.buckets.get(key)
        if bucket is None:
            bucket = self.buckets[key] = {"n": 0, "fail": 0, "h": defaultdict(int)}
        bucket["n"] += 1
        bucket["fail"] += int(failed)
        bucket["h"][_bucket_ms(ms)] += 1

    def flush(self, everything: bool = False) -> None:
        now = int(time.time())
        done = [k for k in self.buckets if everything or k[0] < now - 1]
        if not done:
            return
        with self.path.open("a") as handle:
            for key in sorted(done):
                b = self.buckets.pop(key)
                handle.write(json.dumps({"t": key[0], "service": key[1], "n": b["n"], "fail": b["fail"], "h": b["h"]}) + "\n")


TIMELINE = Timeline(RUN_DIR / f"timeline-{os.getpid()}.jsonl")


@events.request.add_listener
def _on_request(name: str, response_time: float, exception: BaseException | None, **_: object) -> None:
    TIMELINE.record(name.split(" ", 1)[0], response_time, exception is not None)


def _flusher() -> None:
    while True:
        gevent.sleep(1.0)
        TIMELINE.flush()


@events.init.add_listener
def _on_init(environment, **_: object) -> None:
    gevent.spawn(_flusher)


@events.test_start.add_listener
def _on_test_start(environment, **_: object) -> None:
    marker = RUN_DIR / "started.json"
    if not marker.exists():
        marker.write_text(json.dumps({"t": time.time()}))


@events.quitting.add_listener
def _on_quit(environment, **_: object) -> None:
    TIMELINE.flush(everything=True)


# ---- helpers ---------------------------------------------------------------------------------


class _Service(FastHttpUser):
    """A user of one component: its host from the plan, its pace from the profile."""

    abstract = True
    component = ""
    wait_time = constant_throughput(float(PLAN["rps_per_user"]))
    network_timeout = 10.0
    connection_timeout = 5.0

    def __init__(self, environment) -> None:
        self.host = URLS[self.component]
        super().__init__(environment)

    def name(self, method: str, template: str) -> str:
        return f"{self.component} {method} {template}"

    def expect(self, method: str, path: str, template: str, statuses: tuple[int, ...] = (200,), role: str = "admin",
               check=None, **kwargs):
        """One request; a failure unless its status is expected and ``check(body)`` returns no reason."""
        headers = {**_bearer(role), **kwargs.pop("headers", {})}  # explicit headers win over the role's token
        with self.client.request(method, path, name=self.name(method, template), headers=headers,
                                 catch_response=True, **kwargs) as response:
            if response.status_code not in statuses:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return None
            body = response.json() if response.text else None
            reason = check(body) if check else None
            if reason:
                response.failure(reason)
                return None
            response.success()
            return body


def _weighted(cls):
    """Apply the plan's request mix (task name -> weight) to ``cls``."""
    mix = PLAN["mix"].get(cls.component) or {}
    cls.tasks = {getattr(cls, name): weight for name, weight in mix.items() if weight > 0}
    return cls


def _allowed(body) -> str | None:
    if not body.get("allowed"):
        return "refused: " + ", ".join(v.get("code", "?") for v in body.get("violations", []))
    return None


def _order(side: str, price: str, qty: str = "0.0001") -> dict:
    return {"account": ACCOUNT, "strategy": STRATEGY, "client_order_id": _uid("c"), "symbol": SYMBOL, "side": side,
            "type": "limit", "qty": qty, "price": price}


# ---- one user class per service --------------------------------------------------------------


@_weighted
class AuthUser(_Service):
    component = "auth-service"

    def on_start(self):
        # A session starts with a login (argon2id: costly by design) and then lives on its tokens.
        self.pair = self.expect("POST", "/v1/login", "/v1/login", json=CTX["trader"]) or {}

    def _own(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.pair.get('access_token') or TOKENS['trader']}"}

    def introspect(self):
        self.expect("POST", "/v1/introspect", "/v1/introspect", json={"token": self.pair.get("access_token", "")},
                    check=lambda b: None if b.get("active") else "token reported inactive")

    def me(self):
        self.expect("GET", "/v1/me", "/v1/me", headers=self._own(), role="trader")

    def jwks(self):
        self.expect("GET", "/.well-known/jwks.json", "/.well-known/jwks.json")

    def refresh(self):
        if self.pair.get("refresh_token"):
            pair = self.expect("POST", "/v1/refresh", "/v1/refresh", json={"refresh_token": self.pair["refresh_token"]})
            if pair:
                self.pair = pair


@_weighted
class ConfigUser(_Service):
    component = "config-service"

    def _key(self) -> str:
        return f"key-{next(_ids) % 8}"

    def read_key(self):
        self.expect("GET", f"/v1/config/{CTX['namespace']}/{self._key()}", "/v1/config/{ns}/{key}", role="trader")

    def list_namespace(self):
        self.expect("GET", f"/v1/config/{CTX['namespace']}", "/v1/config/{ns}", role="trader")

    def namespaces(self):
        self.expect("GET", "/v1/namespaces", "/v1/namespaces", role="trader")

    def on_start(self):
        # Each user writes a key of its own, sending the version it holds (optimistic concurrency, no conflicts).
        self.own_key, self.version = _uid("w"), 0

    def write_key(self):
        body = self.expect("PUT", f"/v1/config/{CTX['namespace']}/{self.own_key}", "/v1/config/{ns}/{key}", (200, 201),
                           json={"value": {"threshold": next(_ids), "enabled": True}, "expected_version": self.version})
        if body:
            self.version = body["version"]


@_weighted
class CapitalUser(_Service):
    component = "capital-allocator"

    def capital(self):
        self.expect("GET", f"/v1/strategies/{STRATEGY}/capital", "/v1/strategies/{s}/capital", role="trader")

    def current(self):
        self.expect("GET", "/v1/allocations/current", "/v1/allocations/current", role="trader")

    def portfolio(self):
        self.expect("GET", "/v1/portfolio", "/v1/portfolio", role="trader")

    def reserve_release(self):
        order_id = str(uuid.uuid4())
        base = f"/v1/strategies/{STRATEGY}/reservations"
        if self.expect("POST", base, base.replace(STRATEGY, "{s}"), (201,), json={"order_id": order_id, "amount": "25"}):
            self.expect("POST", f"{base}/{order_id}/release", "/v1/strategies/{s}/reservations/{id}/release")


@_weighted
class PolicyUser(_Service):
    component = "policy-service"

    def check_order(self):
        self.expect("POST", "/v1/check-order", "/v1/check-order", role="trader", check=_allowed, json={
            "account": ACCOUNT, "symbol": SYMBOL, "side": "buy", "type": "limit", "qty": "0.001",
            "price": PRICES["resting_buy"], "strategy": STRATEGY})

    def rules(self):
        self.expect("GET", "/v1/rules", "/v1/rules")

    def reference(self):
        self.expect("GET", "/v1/reference", "/v1/reference")


@_weighted
class RiskUser(_Service):
    component = "risk-service"

    def check_order(self):
        self.expect("POST", "/v1/check-order", "/v1/check-order", role="trader", check=_allowed, json={
            "account": ACCOUNT, "strategy": STRATEGY, "symbol": SYMBOL, "side": "buy", "qty": "0.001",
            "price": PRICES["resting_buy"]})

    def positions(self):
        self.expect("GET", f"/v1/accounts/{ACCOUNT}/positions", "/v1/accounts/{a}/positions", role="trader")

    def kill_switch(self):
        self.expect("GET", f"/v1/accounts/{ACCOUNT}/kill-switch", "/v1/accounts/{a}/kill-switch", role="trader",
                    check=lambda b: "kill switch active" if b.get("active") else None)


@_weighted
class FeesUser(_Service):
    component = "fees-service"

    def estimate(self):
        self.expect("POST", "/v1/estimate", "/v1/estimate", role="trader", json={
            "account": ACCOUNT, "symbol": SYMBOL, "side": "buy", "qty": "0.01", "price": PRICES["ask"]})

    def schedule(self):
        self.expect("GET", f"/v1/schedules/{SYMBOL_PATH}", "/v1/schedules/{symbol}", role="trader")


@_weighted
class SecretsUser(_Service):
    component = "secrets-service"

    def list_keys(self):
        self.expect("GET", f"/v1/accounts/{ACCOUNT}/kraken-keys", "/v1/accounts/{a}/kraken-keys", role="trader")

    def permissions(self):
        self.expect("GET", f"/v1/accounts/{ACCOUNT}/permissions", "/v1/accounts/{a}/permissions", role="trader",
                    check=lambda b: None if "trade" in b.get("permissions", []) else "no trade permission")

    def get_key(self):
        self.expect("GET", f"/v1/accounts/{ACCOUNT}/kraken-keys/{CTX['key_id']}", "/v1/accounts/{a}/kraken-keys/{id}",
                    role="trader", check=lambda b: "key material in metadata" if "private_key" in b else None)


@_weighted
class UniverseUser(_Service):
    component = "universe-service"

    def instrument(self):
        self.expect("GET", f"/v1/instruments/{SYMBOL_PATH}", "/v1/instruments/{symbol}", role="trader")

    def list_usd(self):
        self.expect("GET", "/v1/instruments?quote=USD&limit=50", "/v1/instruments?quote=", role="trader")

    def instrument_fees(self):
        self.expect("GET", f"/v1/instruments/{SYMBOL_PATH}/fees", "/v1/instruments/{symbol}/fees", role="trader")


@_weighted
class OmsUser(_Service):
    component = "oms-service"

    def on_start(self):
        self.last_order = None
        self.side = "buy"

    def _place(self, body: dict, states: tuple[str, ...]):
        def check(b):
            return None if b.get("state") in states else f"order {b.get('state')}: " + ", ".join(
                r.get("code", "?") for r in b.get("reasons") or [])
        order = self.expect("POST", "/v1/orders", "/v1/orders", (201,), role="trader", json=body, check=check)
        if order:
            self.last_order = order["id"]
        return order

    def place_and_cancel(self):
        order = self._place(_order("buy", PRICES["resting_buy"]), ("new",))
        if order:
            self.expect("DELETE", f"/v1/orders/{order['id']}", "/v1/orders/{id}", (200, 202), role="trader")

    def marketable(self):
        # Buys and sells alternate so the position stays near flat; priced through the touch so they fill.
        self.side = "sell" if self.side == "buy" else "buy"
        price = float(PRICES["ask"]) * 1.02 if self.side == "buy" else float(PRICES["bid"]) * 0.98
        self._place(_order(self.side, f"{price:.1f}"), ("new", "partially_filled", "filled"))

    def get_order(self):
        if self.last_order:
            self.expect("GET", f"/v1/orders/{self.last_order}", "/v1/orders/{id}", role="trader")
        else:
            self.expect("GET", f"/v1/orders?account={ACCOUNT}&limit=20", "/v1/orders?account=", role="trader")

    def positions(self):
        self.expect("GET", f"/v1/accounts/{ACCOUNT}/positions", "/v1/accounts/{a}/positions", role="trader")


@_weighted
class StrategyUser(_Service):
    component = "strategy-orchestrator"

    def on_start(self):
        # Each user runs a strategy of its own, so its pause/resume transitions never race another user's.
        self.strategy = _uid("load-so").replace("_", "-")[:60]
        self.running = False
        body = {"id": self.strategy, "name": "load test strategy", "kind": "load_test", "params": {"n": 1},
                "accounts": [ACCOUNT], "symbols": [SYMBOL],
                "capital": {"weight": "0.001", "min_capital": "0", "max_capital": "1000"}}
        if self.expect("POST", "/v1/strategies", "/v1/strategies", (201,), json=body) is None:
            return
        # capital-allocator takes targets only from a risk officer or admin: set it there, as an operator would.
        with self.client.put(f"{URLS['capital-allocator']}/v1/strategies/{self.strategy}/target", json=body["capital"],
                             headers=_bearer("admin"), name="capital-allocator PUT /v1/strategies/{s}/target",
                             catch_response=True) as response:
            if response.status_code not in (200, 201):
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
                return
        started = self.expect("POST", f"/v1/strategies/{self.strategy}/start", "/v1/strategies/{id}/start", (202,),
                              json={"reason": "load test"})
        deadline = time.monotonic() + 15
        while started and time.monotonic() < deadline:
            gevent.sleep(0.2)
            body = self.expect("GET", f"/v1/strategies/{self.strategy}", "/v1/strategies/{id}")
            if body and body["state"] in ("running", "failed"):
                self.running = body["state"] == "running"
                break

    def on_stop(self):
        if getattr(self, "running", False):
            self.expect("POST", f"/v1/strategies/{self.strategy}/stop", "/v1/strategies/{id}/stop", (202, 409),
                        json={"reason": "load test over"})

    def get(self):
        self.expect("GET", f"/v1/strategies/{STRATEGY}", "/v1/strategies/{id}", role="trader")

    def list(self):
        self.expect("GET", "/v1/strategies?limit=50", "/v1/strategies", role="trader")

    def transitions(self):
        self.expect("GET", f"/v1/strategies/{STRATEGY}/transitions", "/v1/strategies/{id}/transitions", role="trader")

    def pause_resume(self):
        if not self.running:
            return
        if self.expect("POST", f"/v1/strategies/{self.strategy}/pause", "/v1/strategies/{id}/pause",
                       json={"reason": "load test"}):
            self.expect("POST", f"/v1/strategies/{self.strategy}/resume", "/v1/strategies/{id}/resume",
                        json={"reason": "load test"})


@_weighted
class IngestUser(_Service):
    component = "kraken-ws-ingest"

    def stats(self):
        self.expect("GET", "/stats", "/stats", check=lambda b: None if b else "empty stats")


class BareUser(_Service):
    """A bare FastAPI endpoint (``benchmarks/load_capacity.py`` runs one under the same CPU quota): the floor."""

    component = "bare-fastapi"

    def ping(self):
        self.expect("GET", "/ping", "/ping")


if "bare-fastapi" in PLAN["mix"]:
    _weighted(BareUser)
else:
    BareUser.abstract = True


# ---- the profile -----------------------------------------------------------------------------


class PlanShape(LoadTestShape):
    """The profile's stages: users per service times the services in the run, then stop."""

    stages = PLAN["stages"]
    services = len(PLAN["user_classes"])

    def tick(self):
        elapsed = self.get_run_time()
        for stage in self.stages:
            if elapsed < stage["end_s"]:
                users = stage["users"] * self.services
                return users, max(users, 1) * 4
        return None
