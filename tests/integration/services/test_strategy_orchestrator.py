"""strategy-orchestrator over HTTP: real subprocesses on embedded PostgreSQL/Redis, tokens from the real auth-service.

Covers auth (a token from auth accepted, a revoked one rejected, roles per
endpoint), registration and its validation, updates only while not live, the
state machine over HTTP (invalid transitions answer 409 with the allowed ones,
every transition recorded), start -> running against a real capital-allocator
(and -> failed when it refuses or is unreachable), concurrent starts on two
replicas (exactly one wins), the replicas' caches following each other, and a
workflow left in ``starting`` by a killed replica resumed on restart.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from sandbox.infra.ports import free_port

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def wait_for(check: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    """Poll ``check`` until it returns something truthy (returned)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        time.sleep(0.05)


class Api:
    """A thin client for one service replica."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http = httpx.Client(base_url=url, timeout=15)

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**bearer(token or self.token), **kwargs.pop("headers", {})}
        return self.http.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, token: str | None = None, status: int = 200, **kwargs: Any) -> Any:
        resp = self.call(method, path, token, **kwargs)
        assert resp.status_code == status, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def strategy(self, sid: str, token: str | None = None) -> dict[str, Any]:
        return self.ok("GET", f"/v1/strategies/{sid}", token)

    def register(self, sid: str, token: str | None = None, status: int = 201, **overrides: Any) -> Any:
        return self.ok("POST", "/v1/strategies", token, status, json=strategy_body(sid, **overrides))

    def act(self, sid: str, action: str, token: str | None = None, reason: str | None = None) -> httpx.Response:
        return self.call("POST", f"/v1/strategies/{sid}/{action}", token,
                         json={"reason": reason} if reason is not None else None)

    def transitions(self, sid: str) -> list[dict[str, Any]]:
        return self.ok("GET", f"/v1/strategies/{sid}/transitions")["items"]

    def workflows(self, sid: str) -> list[dict[str, Any]]:
        return self.ok("GET", f"/v1/strategies/{sid}/workflows")["items"]

    def wait_state(self, sid: str, *states: str, timeout: float = 20.0) -> dict[str, Any]:
        def check() -> dict[str, Any] | None:
            body = self.strategy(sid)
            return body if body["state"] in states else None

        try:
            return wait_for(check, timeout, f"{sid} in {states}")
        except AssertionError:
            raise AssertionError(f"{sid} stuck in {self.strategy(sid)['state']}; workflows: "
                                 f"{json.dumps(self.workflows(sid), indent=1)[:3000]}") from None

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


def strategy_body(sid: str, **overrides: Any) -> dict[str, Any]:
    """A valid registration body."""
    body: dict[str, Any] = {
        "id": sid, "name": f"Strategy {sid}", "kind": "market_making",
        "params": {"spread_bps": 12.5, "levels": [1, 2, 3], "risk": {"max_inventory": "2.5"}},
        "accounts": ["acct-1"], "symbols": ["XBT/USD", "ETH/USD"],
        "capital": {"weight": "1", "min_capital": "100", "max_capital": "5000"},
    }
    body.update(overrides)
    return body


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture
def new_db(postgres: Any) -> Callable[[str], str]:
    """Factory: a fresh database named after ``prefix``; returns its DSN."""
    def make(prefix: str) -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        postgres.create_database(name)
        return postgres.dsn(name)

    return make


@pytest.fixture
def allocator_env(new_db: Callable[[str], str]) -> dict[str, str]:
    """Env for a capital-allocator on a fresh database."""
    return {"AETHER_SERVICE_NAME": "capital-allocator", "CAPITAL_ALLOCATOR_DB_URL": new_db("capital"),
            "CAPITAL_ALLOCATOR_CACHE_POLL_S": "0.5"}


@pytest.fixture
def so_env(new_db: Callable[[str], str], auth_service: Any) -> dict[str, str]:
    """Env for a strategy-orchestrator on a fresh database, fast retries, the ``test-client`` service account."""
    return {
        "AETHER_SERVICE_NAME": "strategy-orchestrator",
        "STRATEGY_DATABASE_URL": new_db("strategy"),
        "AETHER_SERVICE_CLIENT_ID": "test-client",
        "AETHER_SERVICE_CLIENT_SECRET": auth_service.service_accounts["test-client"],
        "STRATEGY_CACHE_POLL_S": "0.5",
        "STRATEGY_SWEEP_S": "0.5",
        "STRATEGY_CALL_TIMEOUT_S": "2",
        "STRATEGY_CALL_ATTEMPTS": "3",
        "STRATEGY_RETRY_BASE_S": "0.1",
        "STRATEGY_RETRY_MAX_S": "0.5",
        "STRATEGY_WORKFLOW_LEASE_S": "5",
    }


@pytest.fixture
def allocator(start_service: Any, allocator_env: dict[str, str], admin_token: str) -> Api:
    """A capital-allocator with a NAV of 10000 USD (set by the admin)."""
    api = Api(start_service("capital_allocator", allocator_env).url, admin_token)
    api.ok("PUT", "/v1/portfolio", json={"nav": "10000", "cash_buffer_pct": "0"})
    return api


@pytest.fixture
def so(start_service: Any, so_env: dict[str, str], admin_token: str, allocator: Api) -> Api:
    """A strategy-orchestrator wired to the capital-allocator (no OMS)."""
    env = {**so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": allocator.url}
    return Api(start_service("strategy_orchestrator", env).url, admin_token)


@pytest.fixture
def registry(start_service: Any, so_env: dict[str, str], admin_token: str) -> Api:
    """A strategy-orchestrator with no peers configured (registry and state machine only)."""
    return Api(start_service("strategy_orchestrator", so_env).url, admin_token)


def risk_target(allocator: Api, make_user: Any, sid: str, weight: str = "1", **bounds: str) -> None:
    """A risk officer sets the strategy's target at capital-allocator (its API lets only risk officers do that)."""
    _, _, risk = make_user("risk-officer")
    resp = allocator.call("PUT", f"/v1/strategies/{sid}/target", risk, json={"weight": weight, **bounds})
    assert resp.status_code in (200, 201), resp.text


# ------------------------------------------------------------------------------------------- auth


def test_health_metrics_and_no_token(registry: Api) -> None:
    health = registry.http.get("/healthz")
    assert health.status_code == 200, health.text
    checks = health.json()["checks"]
    assert checks["database"] == "ok" and checks["strategy_cache"] == "ok" and checks["sessions"] == "ok"
    metrics = registry.http.get("/metrics").text
    assert "strategy_strategies" in metrics and "http_requests_total" in metrics
    resp = registry.http.get("/v1/strategies")
    assert resp.status_code == 401 and resp.headers["WWW-Authenticate"] == "Bearer"


def test_a_token_from_auth_is_accepted_and_a_revoked_one_rejected(
    registry: Api, auth_service: Any, make_user: Any
) -> None:
    _, _, trader = make_user("trader")
    registry.register("s-auth", trader)
    assert registry.strategy("s-auth", trader)["created_by"].startswith("u")
    forged = trader[:-4] + ("AAAA" if not trader.endswith("AAAA") else "BBBB")
    assert registry.call("GET", "/v1/strategies/s-auth", forged).status_code == 401
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(trader), timeout=10).status_code == 204
    resp = registry.call("GET", "/v1/strategies/s-auth", trader)
    assert resp.status_code == 401 and resp.json()["error"] == "unauthorized"
    assert registry.act("s-auth", "start", trader).status_code == 401


def test_roles_per_endpoint(registry: Api, make_user: Any, service_token: Any) -> None:
    _, _, viewer = make_user("viewer")
    _, _, risk = make_user("risk-officer")
    _, _, trader = make_user("trader")
    service = service_token("test-client")
    for token in (viewer, risk):
        resp = registry.call("POST", "/v1/strategies", token, json=strategy_body("s-roles"))
        assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    registry.register("s-roles", trader)
    registry.register("s-roles-svc", service)
    for token in (viewer, risk):
        assert registry.act("s-roles", "start", token).status_code == 403
        assert registry.call("PATCH", "/v1/strategies/s-roles", token, json={"name": "x"}).status_code == 403
    assert registry.call("PATCH", "/v1/strategies/s-roles", service, json={"name": "renamed"}).status_code == 200
    for token in (viewer, risk, trader, service):
        assert registry.strategy("s-roles", token)["name"] == "renamed"
        assert registry.call("GET", "/v1/strategies", token).status_code == 200
        assert registry.call("GET", "/v1/strategies/s-roles/transitions", token).status_code == 200
        assert registry.call("GET", "/v1/strategies/s-roles/workflows", token).status_code == 200


# ------------------------------------------------------------------------------------------- registry


def test_register_read_list_and_validation(registry: Api) -> None:
    created = registry.register("mm-1")
    assert created["state"] == "registered" and created["version"] > 0
    assert created["capital"] == {"weight": "1", "min_capital": "100", "max_capital": "5000",
                                  "min_weight": None, "max_weight": None}
    assert created["params"] == {"spread_bps": 12.5, "levels": [1, 2, 3], "risk": {"max_inventory": "2.5"}}
    assert [a["action"] for a in created["allowed_actions"]] == ["start"]
    resp = registry.call("GET", "/v1/strategies/mm-1")
    assert resp.headers["ETag"] == f'"{created["version"]}"'
    assert registry.call("GET", "/v1/strategies/mm-1", headers={"If-None-Match": resp.headers["ETag"]}).status_code == 304
    dup = registry.call("POST", "/v1/strategies", json=strategy_body("mm-1"))
    assert dup.status_code == 409 and dup.json()["error"] == "strategy_exists"
    missing = registry.call("GET", "/v1/strategies/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "strategy_not_found"
    assert registry.call("GET", "/v1/strategies/nope/transitions").status_code == 404

    deep: Any = 1
    for _ in range(9):
        deep = {"d": deep}
    bad_bodies = [
        {**strategy_body("b1"), "extra": 1},
        strategy_body("b2", params={"x": "a" * 20_000}),
        strategy_body("b3", params=deep),
        strategy_body("b4", params=[1, 2]),
        strategy_body("b5", params={"k": "nul\u0000"}),
        strategy_body("b6", params={"k": 2**70}),
        strategy_body("b7", accounts=[]),
        strategy_body("b8", accounts=["a", "a"]),
        strategy_body("b9", symbols=["not a symbol"]),
        strategy_body("b10", capital={"weight": "1", "min_capital": "10", "max_capital": "5"}),
        strategy_body("b11", capital={"weight": "-1"}),
        strategy_body("b12", capital={"weight": "1.123456789"}),
        strategy_body("-bad-id"),
        strategy_body("b13", name="   "),
        strategy_body("b14", kind="Market Making"),
    ]
    for body in bad_bodies:
        resp = registry.call("POST", "/v1/strategies", json=body)
        assert resp.status_code == 422, (body["id"], resp.text)
        assert resp.json()["error"] == "validation_error"
    nan = registry.call("POST", "/v1/strategies", content=json.dumps(strategy_body("b15")).replace("12.5", "NaN"),
                        headers={"Content-Type": "application/json"})
    assert nan.status_code == 422, nan.text
    page = registry.ok("GET", "/v1/strategies", params={"limit": 1})
    assert page["count"] == 1 and page["items"][0]["id"] == "mm-1" and page["next_after"] is None
    for i in range(3):
        registry.register(f"z-{i}", kind="arbitrage")
    first = registry.ok("GET", "/v1/strategies", params={"kind": "arbitrage", "limit": 2})
    assert [s["id"] for s in first["items"]] == ["z-0", "z-1"] and first["next_after"] == "z-1"
    rest = registry.ok("GET", "/v1/strategies", params={"kind": "arbitrage", "after": "z-1"})
    assert [s["id"] for s in rest["items"]] == ["z-2"] and rest["next_after"] is None
    assert registry.ok("GET", "/v1/strategies", params={"state": "running"})["count"] == 0


def test_patch_only_while_not_live_and_if_match(registry: Api) -> None:
    created = registry.register("p-1")
    stale = created["version"]
    changed = registry.ok("PATCH", "/v1/strategies/p-1", json={"params": {"spread_bps": 3}},
                          headers={"If-Match": f'"{stale}"'})
    assert changed["params"] == {"spread_bps": 3} and changed["version"] > stale
    resp = registry.call("PATCH", "/v1/strategies/p-1", json={"name": "x"}, headers={"If-Match": f'"{stale}"'})
    assert resp.status_code == 412 and resp.json()["error"] == "version_mismatch"
    for body in ({}, {"params": None}, {"state": "running"}, {"params": {"x": float("inf")} and "bad"}):
        assert registry.call("PATCH", "/v1/strategies/p-1", json=body).status_code == 422, body
    # start fails at once (no capital-allocator configured): the strategy is failed, params editable again
    assert registry.act("p-1", "start").status_code == 202
    failed = registry.wait_state("p-1", "failed")
    assert "STRATEGY_CAPITAL_ALLOCATOR_URL is not set" in failed["state_reason"]
    assert registry.call("PATCH", "/v1/strategies/p-1", json={"params": {"a": 1}}).status_code == 200


def test_invalid_transitions_answer_409_with_the_allowed_ones(registry: Api, make_user: Any) -> None:
    _, _, trader = make_user("trader")
    registry.register("t-1")
    for action in ("pause", "resume", "stop", "fail"):
        resp = registry.act("t-1", action, trader)
        assert resp.status_code == 409, resp.text
        body = resp.json()
        assert body["error"] == "invalid_transition"
        assert body["detail"] == {"state": "registered", "action": action, "allowed": [{"action": "start", "to": "starting"}]}
        assert "allowed: start -> starting" in body["message"]
    assert registry.act("nope", "start").status_code == 404
    assert registry.act("t-1", "start", trader, reason="go").status_code == 202
    failed = registry.wait_state("t-1", "failed")
    assert [a["action"] for a in failed["allowed_actions"]] == ["start", "stop"]
    resp = registry.act("t-1", "pause", trader)
    assert resp.status_code == 409 and resp.json()["detail"]["allowed"] == [
        {"action": "start", "to": "starting"}, {"action": "stop", "to": "stopping"}]
    history = registry.transitions("t-1")
    assert [(t["from"], t["to"], t["action"]) for t in history] == [
        (None, "registered", "register"), ("registered", "starting", "start"), ("starting", "failed", "workflow:start")]
    assert history[1]["reason"] == "go" and history[1]["who"].startswith("u") and history[1]["who_kind"] == "user"
    assert history[2]["who"] == "strategy-orchestrator" and history[2]["who_kind"] == "system"
    assert history[2]["workflow_id"] == history[1]["workflow_id"] is not None
    assert history[0]["when"] <= history[1]["when"] <= history[2]["when"]
    assert registry.metric("strategy_actions_rejected_total", action="pause", code="invalid_transition") >= 2


# ------------------------------------------------------------------------------------------- capital-allocator


def test_start_runs_with_capital_from_the_real_capital_allocator(
    so: Api, allocator: Api, make_user: Any
) -> None:
    _, _, trader = make_user("trader")
    so.register("alpha", trader, capital={"weight": "1", "min_capital": "100", "max_capital": "4000"})
    risk_target(allocator, make_user, "alpha", "1", max_capital="4000")
    started = so.act("alpha", "start", trader, reason="open for business")
    assert started.status_code == 202 and started.json()["state"] == "starting"
    running = so.wait_state("alpha", "running", "failed")
    assert running["state"] == "running", running
    assert running["state_reason"].startswith("capital target kept as set at capital-allocator; capital allocated: 4000")
    capital = allocator.ok("GET", "/v1/strategies/alpha/capital")
    assert capital["active"] is True and capital["allocated"] == "4000.00"
    history = allocator.ok("GET", "/v1/allocations/history", params={"strategy": "alpha", "trigger": "allocate"})
    assert history["items"][0]["actor"] == "test-client" and history["items"][0]["actor_kind"] == "service"
    (workflow,) = so.workflows("alpha")
    assert workflow["kind"] == "start" and workflow["status"] == "succeeded" and workflow["owner"] is None
    assert [(s["step"], s["outcome"]) for s in workflow["steps"]] == [("set_target", "skipped"), ("allocate", "ok")]
    assert workflow["steps"][1]["detail"]["allocated"] == "4000.00"
    # pause / resume are plain transitions; PATCH refused while running
    assert so.act("alpha", "pause", trader).status_code == 200
    assert so.call("PATCH", "/v1/strategies/alpha", trader, json={"capital": {"weight": "2"}}).status_code == 409
    assert so.call("PATCH", "/v1/strategies/alpha", trader, json={"params": {"spread_bps": 1}}).status_code == 200
    assert so.act("alpha", "resume", trader).status_code == 200
    resp = so.call("PATCH", "/v1/strategies/alpha", trader, json={"params": {"spread_bps": 2}})
    assert resp.status_code == 409 and resp.json()["error"] == "not_editable"
    assert [t["to"] for t in so.transitions("alpha")] == [
        "registered", "starting", "running", "paused", "running"]
    assert so.metric("strategy_workflows_total", workflow="start", status="succeeded") == 1


def test_start_fails_with_the_reason_when_the_allocator_refuses(
    so: Api, allocator: Api, make_user: Any
) -> None:
    so.register("no-target")
    assert so.act("no-target", "start").status_code == 202
    failed = so.wait_state("no-target", "failed")
    assert "a risk officer must PUT /v1/strategies/no-target/target" in failed["state_reason"]
    # infeasible: the minimum exceeds the NAV -> capital-allocator answers 409 infeasible_*
    risk_target(allocator, make_user, "greedy", "1", min_capital="20000")
    so.register("greedy")
    assert so.act("greedy", "start").status_code == 202
    failed = so.wait_state("greedy", "failed")
    assert failed["state_reason"].startswith("allocate failed: capital-allocator: HTTP 409 infeasible"), failed
    steps = so.workflows("greedy")[0]["steps"]
    assert [(s["step"], s["outcome"], s["status_code"]) for s in steps][-1] == ("allocate", "refused", 409)
    assert allocator.ok("GET", "/v1/strategies/greedy/capital")["active"] is False
    # a failed strategy can be started again once the cause is fixed
    risk_target(allocator, make_user, "greedy", "1", min_capital="10")
    assert so.act("greedy", "start").status_code == 202
    assert so.wait_state("greedy", "running", "failed")["state"] == "running"


def test_start_fails_after_bounded_retries_when_the_allocator_is_unreachable(
    start_service: Any, so_env: dict[str, str], admin_token: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    so = Api(start_service("strategy_orchestrator", {**so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": dead}).url,
             admin_token)
    so.register("lonely")
    assert so.act("lonely", "start").status_code == 202
    failed = so.wait_state("lonely", "failed")
    assert "set_target failed" in failed["state_reason"] and "gave up after 3 attempts" in failed["state_reason"]
    steps = so.workflows("lonely")[0]["steps"]
    assert [(s["step"], s["attempt"], s["outcome"]) for s in steps] == [
        ("set_target", 1, "retry"), ("set_target", 2, "retry"), ("set_target", 3, "exhausted")]
    assert "ConnectError" in steps[0]["detail"]["error"]


# ------------------------------------------------------------------------------------------- replicas


def test_concurrent_starts_on_two_replicas_exactly_one_wins(
    start_service: Any, so_env: dict[str, str], admin_token: str
) -> None:
    # capital-allocator unreachable with many attempts: the winners stay ``starting`` while the race runs
    env = {**so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": f"http://127.0.0.1:{free_port()}",
           "STRATEGY_CALL_ATTEMPTS": "100", "STRATEGY_RETRY_MAX_S": "0.3"}
    a = Api(start_service("strategy_orchestrator", env).url, admin_token)
    b = Api(start_service("strategy_orchestrator", env).url, admin_token)
    for i in range(3):
        a.register(f"race-{i}")
    for i in range(3):
        sid = f"race-{i}"
        wait_for(lambda: b.call("GET", f"/v1/strategies/{sid}").status_code == 200, 5, "replica b sees it")
        apis = [a, b] * 6
        with ThreadPoolExecutor(len(apis)) as pool:
            responses = list(pool.map(lambda api: api.act(sid, "start"), apis))
        codes = sorted(r.status_code for r in responses)
        assert codes == [202] + [409] * (len(apis) - 1), codes
        assert all(r.json()["error"] == "invalid_transition" for r in responses if r.status_code == 409)
        starts = [t for t in a.transitions(sid) if t["action"] == "start"]
        assert len(starts) == 1
        assert len(a.workflows(sid)) == 1
    for api in (a, b):
        for i in range(3):
            api.wait_state(f"race-{i}", "starting")
    # exactly one replica runs each workflow (the lease), and a fail ends it everywhere
    for i in range(3):
        assert a.act(f"race-{i}", "fail").status_code == 200
        b.wait_state(f"race-{i}", "failed")


def test_replica_caches_follow_each_other(start_service: Any, so_env: dict[str, str], admin_token: str) -> None:
    a = Api(start_service("strategy_orchestrator", so_env).url, admin_token)
    b = Api(start_service("strategy_orchestrator", so_env).url, admin_token)
    created = a.register("shared")
    seen = wait_for(lambda: b.call("GET", "/v1/strategies/shared").status_code == 200, 5, "b sees the new strategy")
    assert seen
    changed = b.ok("PATCH", "/v1/strategies/shared", json={"name": "changed on b"})
    assert changed["version"] > created["version"]
    wait_for(lambda: a.strategy("shared")["name"] == "changed on b", 5, "a sees b's change")


def seed_allocator(
    start_service: Any, allocator_env: dict[str, str], admin_token: str, make_user: Any, sid: str, nav: str
) -> dict[str, str]:
    """Run a capital-allocator once to set a NAV and ``sid``'s target, stop it; return the env to restart it.

    It stays down meanwhile, so an orchestrator pointed at it keeps retrying; restarting it (same database,
    same port) makes it answer with the target already in place.
    """
    env = {**allocator_env, "AETHER_PORT": str(free_port())}
    seeding = start_service("capital_allocator", env)
    api = Api(seeding.url, admin_token)
    api.ok("PUT", "/v1/portfolio", json={"nav": nav})
    risk_target(api, make_user, sid, "1")
    seeding.stop()
    return env


def test_a_workflow_left_starting_by_a_killed_replica_resumes_on_restart(
    start_service: Any, so_env: dict[str, str], allocator_env: dict[str, str], admin_token: str, make_user: Any
) -> None:
    ca_env = seed_allocator(start_service, allocator_env, admin_token, make_user, "phoenix", "1000")
    env = {**so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": f"http://127.0.0.1:{ca_env['AETHER_PORT']}",
           "STRATEGY_CALL_ATTEMPTS": "100", "STRATEGY_RETRY_MAX_S": "0.3"}
    first = start_service("strategy_orchestrator", env)
    so = Api(first.url, admin_token)
    so.register("phoenix")
    assert so.act("phoenix", "start").status_code == 202
    wait_for(lambda: len(so.workflows("phoenix")[0]["steps"]) >= 2, 10, "a few failed attempts")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    allocator = Api(start_service("capital_allocator", ca_env).url, admin_token)
    # same port = same replica id: it takes its workflow back at start-up, without waiting for the lease
    second = Api(start_service("strategy_orchestrator", {**env, "AETHER_PORT": first.env["AETHER_PORT"]}).url,
                 admin_token)
    running = second.wait_state("phoenix", "running", "failed", timeout=20)
    assert running["state"] == "running", running
    (workflow,) = second.workflows("phoenix")
    assert workflow["status"] == "succeeded"
    assert [s["outcome"] for s in workflow["steps"]][-2:] == ["skipped", "ok"]
    assert allocator.ok("GET", "/v1/strategies/phoenix/capital")["allocated"] == "1000.00"
    assert [t["to"] for t in second.transitions("phoenix")] == ["registered", "starting", "running"]


def test_another_replica_takes_over_when_the_lease_expires(
    start_service: Any, so_env: dict[str, str], allocator_env: dict[str, str], admin_token: str, make_user: Any
) -> None:
    ca_env = seed_allocator(start_service, allocator_env, admin_token, make_user, "relay", "500")
    env = {**so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": f"http://127.0.0.1:{ca_env['AETHER_PORT']}",
           "STRATEGY_CALL_ATTEMPTS": "100", "STRATEGY_RETRY_MAX_S": "0.3"}
    first = start_service("strategy_orchestrator", env)
    survivor = Api(start_service("strategy_orchestrator", env).url, admin_token)
    a = Api(first.url, admin_token)
    a.register("relay")
    assert a.act("relay", "start").status_code == 202
    wait_for(lambda: survivor.workflows("relay") and survivor.workflows("relay")[0]["steps"], 10, "attempts")
    owner = survivor.workflows("relay")[0]["owner"]
    assert owner.endswith(f":{first.env['AETHER_PORT']}")
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    allocator = Api(start_service("capital_allocator", ca_env).url, admin_token)
    assert survivor.wait_state("relay", "running", "failed", timeout=25)["state"] == "running"
    (workflow,) = survivor.workflows("relay")
    assert workflow["status"] == "succeeded"
    assert allocator.ok("GET", "/v1/strategies/relay/capital")["allocated"] == "500.00"


def test_fail_cancels_a_running_start_workflow(start_service: Any, so_env: dict[str, str], admin_token: str) -> None:
    env = {**so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": f"http://127.0.0.1:{free_port()}",
           "STRATEGY_CALL_ATTEMPTS": "100", "STRATEGY_RETRY_MAX_S": "0.3"}
    so = Api(start_service("strategy_orchestrator", env).url, admin_token)
    so.register("abort")
    assert so.act("abort", "start").status_code == 202
    resp = so.act("abort", "fail", reason="operator gave up")
    assert resp.status_code == 200 and resp.json()["state"] == "failed"
    (workflow,) = so.workflows("abort")
    assert workflow["status"] == "cancelled" and workflow["outcome"].startswith("cancelled: fail by")
    count = len(workflow["steps"])
    time.sleep(1.0)
    assert len(so.workflows("abort")[0]["steps"]) <= count + 1  # at most the attempt in flight finishes
    assert so.strategy("abort")["state"] == "failed"
    assert so.strategy("abort")["state_reason"] == "operator gave up"


# ------------------------------------------------------------------------------------------- oms-service


@pytest.fixture
def venue(service_log_dir: Any) -> Any:
    """The real trading venue (``python -m sandbox.venue.trading``) with a resting XBT/USD book."""
    from test_oms_support import VenueProcess

    process = VenueProcess(service_log_dir).start()
    try:
        process.set_book("XBTUSD", bids=[["29990.0", "5"]], asks=[["30010.0", "5"]])
        yield process
    finally:
        process.stop()


def test_stop_cancels_open_orders_at_the_real_oms_and_releases_capital(
    start_service: Any, so_env: dict[str, str], allocator: Api, venue: Any, postgres: Any, redis_server: Any,
    auth_service: Any, admin_token: str, make_user: Any, tmp_path: Any,
) -> None:
    from test_oms_support import OmsApi

    # oms-service on the venue, reserving strategy capital at the same capital-allocator
    creds = tmp_path / "kraken"
    venue_account = venue.create_account(creds)
    db = f"oms_so_{uuid.uuid4().hex[:8]}"
    postgres.create_database(db)
    oms_svc = start_service("oms", {
        "AETHER_SERVICE_NAME": "oms-service",
        "AETHER_SERVICE_CLIENT_ID": "test-client",
        "AETHER_SERVICE_CLIENT_SECRET": auth_service.service_accounts["test-client"],
        "OMS_REDIS_URL": redis_server.url.rsplit("/", 1)[0] + "/5",
        "OMS_SIMULATION_DATABASE_URL": postgres.dsn(db),
        "OMS_VENUE_URL": venue.url,
        "KRAKEN_CREDENTIALS_DIR": str(creds),
        "OMS_CAPITAL_ALLOCATOR_URL": allocator.url,
        "OMS_POLL_INTERVAL_S": "1",
    })
    oms = OmsApi(oms_svc.url, admin_token)
    so = Api(start_service("strategy_orchestrator", {
        **so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": allocator.url, "STRATEGY_OMS_URL": oms_svc.url}).url, admin_token)
    _, _, trader = make_user("trader")

    so.register("mm-stop", trader, capital={"weight": "1"})
    risk_target(allocator, make_user, "mm-stop", "1", max_capital="5000")
    assert so.act("mm-stop", "start", trader).status_code == 202
    assert so.wait_state("mm-stop", "running", "failed")["state"] == "running"
    orders = [oms.placed(account="acct-1", strategy="mm-stop", qty="0.01", price=price)
              for price in ("29000.0", "28900.0")]
    other = oms.placed(account="acct-1", strategy=None, qty="0.01", price="28800.0")  # no strategy: not ours
    assert [o["state"] for o in [*orders, other]] == ["new"] * 3, [*orders, other]
    assert float(allocator.ok("GET", "/v1/strategies/mm-stop/capital")["reserved"]) > 0

    resp = so.act("mm-stop", "stop", trader, reason="end of day")
    assert resp.status_code == 202 and resp.json()["state"] == "stopping"
    stopped = so.wait_state("mm-stop", "stopped", "failed")
    assert stopped["state"] == "stopped", stopped
    assert stopped["state_reason"] == "open orders cancelled (2 cancelled); capital released"
    # the OMS cancelled exactly this strategy's orders, at the venue too
    for order in orders:
        assert oms.order(order["id"])["state"] == "canceled"
    assert oms.order(other["id"])["state"] == "new"
    open_txids = venue.open_txids(venue_account["account_id"])
    assert not {o["txid"] for o in orders} & open_txids and other["txid"] in open_txids
    # and the strategy's capital went back: inactive, nothing allocated, nothing reserved
    try:
        wait_for(lambda: float(allocator.ok("GET", "/v1/strategies/mm-stop/capital")["reserved"]) == 0, 10, "released")
    except AssertionError:
        raise AssertionError(allocator.ok("GET", "/v1/strategies/mm-stop/capital")) from None
    capital = allocator.ok("GET", "/v1/strategies/mm-stop/capital")
    assert capital["active"] is False and capital["allocated"] == "0.00"
    workflow = so.workflows("mm-stop")[0]
    assert workflow["kind"] == "stop" and workflow["status"] == "succeeded"
    assert [(s["step"], s["outcome"]) for s in workflow["steps"]] == [("cancel_orders", "ok"), ("release", "ok")]
    assert workflow["steps"][0]["detail"]["canceled"] == 2
    assert [(t["from"], t["to"]) for t in so.transitions("mm-stop")][-2:] == [
        ("running", "stopping"), ("stopping", "stopped")]
    oms.call("DELETE", f"/v1/orders/{other['id']}")


def test_stop_fails_with_the_reason_when_the_oms_is_unreachable_and_can_be_retried(
    start_service: Any, so_env: dict[str, str], allocator: Api, admin_token: str, make_user: Any
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    so = Api(start_service("strategy_orchestrator", {
        **so_env, "STRATEGY_CAPITAL_ALLOCATOR_URL": allocator.url, "STRATEGY_OMS_URL": dead}).url, admin_token)
    so.register("stuck")
    risk_target(allocator, make_user, "stuck", "1")
    assert so.act("stuck", "start").status_code == 202
    assert so.wait_state("stuck", "running", "failed")["state"] == "running"
    assert so.act("stuck", "stop").status_code == 202
    failed = so.wait_state("stuck", "failed", "stopped")
    assert failed["state"] == "failed"
    assert failed["state_reason"].startswith("cancel_orders failed: oms-service: oms-service unreachable")
    assert "gave up after 3 attempts" in failed["state_reason"]
    # capital is not released while orders may still be open
    assert allocator.ok("GET", "/v1/strategies/stuck/capital")["active"] is True
    assert [a["action"] for a in failed["allowed_actions"]] == ["start", "stop"]
    assert so.act("stuck", "stop").status_code == 202  # failed -> stopping: a second try is allowed
    assert so.wait_state("stuck", "failed", "stopped")["state"] == "failed"
    assert len(so.workflows("stuck")) == 3
