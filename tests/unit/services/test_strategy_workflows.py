"""Workflow steps and the retry loop, with fake peers and a fake repository (no servers)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from sandbox.services.strategy_orchestrator import workflows
from sandbox.services.strategy_orchestrator.clients import CallResult, Peer, classify
from sandbox.services.strategy_orchestrator.settings import StrategySettings
from sandbox.services.strategy_orchestrator.workflows import (
    Context,
    Orchestrator,
    allocate,
    backoff,
    cancel_orders,
    release,
    set_target,
)
from sandbox.services.kit.settings import KitSettings

WF = uuid.UUID(int=7)


class FakePeer:
    """Answers queued results per (method, path) and records the calls."""

    def __init__(self, answers: dict[tuple[str, str], list[CallResult]] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, str, Any]] = []

    async def call(self, method: str, path: str, json: Any = None) -> CallResult:
        self.calls.append((method, path, json))
        queue = self.answers.get((method, path))
        assert queue, f"unexpected call {method} {path}"
        return queue.pop(0) if len(queue) > 1 else queue[0]


def ctx(allocator: FakePeer | None = None, oms: FakePeer | None = None) -> Context:
    """A context for strategy ``s1`` with a capital target."""
    return Context(WF, "s1", {"weight": "1", "min_capital": "0", "max_capital": None, "min_weight": None,
                              "max_weight": None}, allocator or FakePeer(), oms or FakePeer())  # type: ignore[arg-type]


def refused(status: int, code: str, message: str = "no") -> CallResult:
    return CallResult("refused", status, {"error": code, "message": message}, f"HTTP {status} {code}: {message}")


# ------------------------------------------------------------------------------------------- classify


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, {"ok": 1}, "ok"), (201, None, "ok"), (204, None, "ok"),
        (400, {"error": "bad"}, "refused"), (401, {"error": "unauthorized"}, "refused"), (403, None, "refused"),
        (404, {"error": "strategy_not_found"}, "refused"), (409, {"error": "nav_not_set"}, "refused"),
        (422, None, "refused"),
        (409, {"error": "retry"}, "retry"), (408, None, "retry"), (429, None, "retry"),
        (500, None, "retry"), (502, None, "retry"), (503, {"error": "database_unavailable"}, "retry"),
    ],
)
def test_classify(status: int, body: Any, outcome: str) -> None:
    resp = httpx.Response(status, json=body) if body is not None else httpx.Response(status, text="plain")
    res = classify(resp)
    assert res.outcome == outcome and res.status_code == status
    if outcome != "ok":
        assert res.error and res.error.startswith(f"HTTP {status}")


def test_classify_keeps_the_error_code_and_message() -> None:
    res = classify(httpx.Response(409, json={"error": "nav_not_set", "message": "no NAV", "detail": None}))
    assert res.code == "nav_not_set" and res.error == "HTTP 409 nav_not_set: no NAV"


def test_an_unconfigured_peer_refuses_with_the_variable_name() -> None:
    kit = KitSettings(service_name="s", session_redis_url="redis://127.0.0.1:1/0")
    peer = Peer("oms-service", "STRATEGY_OMS_URL", None, kit, 1.0)
    res = asyncio.run(peer.call("POST", "/x"))
    assert res.outcome == "refused" and "STRATEGY_OMS_URL is not set" in (res.error or "")
    no_account = Peer("oms-service", "STRATEGY_OMS_URL", "http://127.0.0.1:1", kit, 1.0)
    assert "AETHER_SERVICE_CLIENT_ID" in (no_account.problem or "")


def test_an_unreachable_peer_is_a_retry() -> None:
    kit = KitSettings(service_name="s", session_redis_url="redis://127.0.0.1:1/0", auth_url="http://127.0.0.1:9",
                      service_client_id="c", service_client_secret="x")

    async def go() -> CallResult:
        peer = Peer("capital-allocator", "X", "http://127.0.0.1:9", kit, 1.0)
        try:
            return await peer.call("GET", "/v1/strategies/s1")
        finally:
            await peer.aclose()

    res = asyncio.run(go())
    assert res.outcome == "retry" and "ConnectError" in (res.error or "")


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n, 0.5, 3.0) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


# ------------------------------------------------------------------------------------------- steps


def test_set_target_sends_the_registered_target() -> None:
    peer = FakePeer({("PUT", "/v1/strategies/s1/target"): [CallResult("ok", 201, {})]})
    attempt = asyncio.run(set_target(ctx(peer)))
    assert attempt.outcome == "ok" and peer.calls[0][2]["weight"] == "1"


def test_set_target_forbidden_uses_an_existing_target() -> None:
    peer = FakePeer({
        ("PUT", "/v1/strategies/s1/target"): [refused(403, "forbidden")],
        ("GET", "/v1/strategies/s1"): [CallResult("ok", 200, {"target": {"weight": "3"}})],
    })
    attempt = asyncio.run(set_target(ctx(peer)))
    assert attempt.outcome == "skipped" and attempt.detail["target"] == {"weight": "3"}


def test_set_target_forbidden_without_a_target_is_refused_naming_the_fix() -> None:
    peer = FakePeer({
        ("PUT", "/v1/strategies/s1/target"): [refused(403, "forbidden")],
        ("GET", "/v1/strategies/s1"): [refused(404, "strategy_not_found")],
    })
    attempt = asyncio.run(set_target(ctx(peer)))
    assert attempt.outcome == "refused" and "a risk officer must PUT /v1/strategies/s1/target" in attempt.summary


def test_allocate_reports_the_amount() -> None:
    peer = FakePeer({("POST", "/v1/strategies/s1/allocate"): [CallResult(
        "ok", 200, {"capital": {"allocated": "600.00", "currency": "USD"}, "allocation": {"id": 4}})]})
    attempt = asyncio.run(allocate(ctx(peer)))
    assert attempt.outcome == "ok" and attempt.summary == "capital allocated: 600.00 USD (allocation run 4)"
    assert attempt.detail == {"allocated": "600.00", "currency": "USD", "allocation_id": 4}


def test_allocate_refused_carries_the_reason() -> None:
    peer = FakePeer({("POST", "/v1/strategies/s1/allocate"): [refused(409, "nav_not_set", "no NAV")]})
    attempt = asyncio.run(allocate(ctx(peer)))
    assert attempt.outcome == "refused" and attempt.summary == "capital-allocator: HTTP 409 nav_not_set: no NAV"


def test_cancel_orders_retries_failures_and_accepts_pending() -> None:
    path = ("POST", "/v1/strategies/s1/cancel-all")
    failing = CallResult("ok", 200, {"scope": "strategy:s1", "requested": 2, "canceled": ["o1"], "pending": [],
                                     "already_done": [], "failed": [{"order_id": "o2", "error": "EService:Busy"}]})
    oms = FakePeer({path: [failing]})
    attempt = asyncio.run(cancel_orders(ctx(oms=oms)))
    assert attempt.outcome == "retry" and "o2: EService:Busy" in attempt.summary
    assert oms.calls[0][2]["reason"].startswith("strategy-orchestrator: stop")
    done = CallResult("ok", 200, {"scope": "strategy:s1", "requested": 2, "canceled": ["o1"], "pending": ["o3"],
                                  "already_done": [], "failed": []})
    attempt = asyncio.run(cancel_orders(ctx(oms=FakePeer({path: [done]}))))
    assert attempt.outcome == "ok" and attempt.summary == (
        "open orders cancelled (1 cancelled, 1 awaiting the venue's acknowledgement)")
    assert attempt.detail["canceled"] == 1 and attempt.detail["pending"] == 1


def test_release_with_nothing_to_release_is_skipped() -> None:
    for code, status in (("strategy_not_found", 404), ("nav_not_set", 409)):
        peer = FakePeer({("POST", "/v1/strategies/s1/release"): [refused(status, code)]})
        assert asyncio.run(release(ctx(peer))).outcome == "skipped"
    peer = FakePeer({("POST", "/v1/strategies/s1/release"): [refused(403, "forbidden")]})
    assert asyncio.run(release(ctx(peer))).outcome == "refused"


# ------------------------------------------------------------------------------------------- the runner


class FakeRepo:
    """Replaces the repository functions the runner uses."""

    def __init__(self, lease_ok: int = 10**6, done: dict[str, Any] | None = None) -> None:
        self.steps: list[tuple[str, int, str]] = []
        self.finished: list[tuple[str, str]] = []
        self.lease_ok = lease_ok
        self.done = done or {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        repo = workflows.repository

        async def renew_lease(*_a: Any) -> bool:
            self.lease_ok -= 1
            return self.lease_ok >= 0

        async def record_step(_pool: Any, _wf: Any, step: str, attempt: int, outcome: str, *_a: Any) -> None:
            self.steps.append((step, attempt, outcome))

        async def finish_workflow(_pool: Any, _wf: Any, status: str, reason: str, **_k: Any) -> None:
            self.finished.append((status, reason))
            return None

        async def completed_steps(*_a: Any) -> dict[str, Any]:
            return self.done

        async def strategy_capital(*_a: Any) -> dict[str, Any]:
            return {"weight": "1"}

        for name, fn in [("renew_lease", renew_lease), ("record_step", record_step),
                         ("finish_workflow", finish_workflow), ("completed_steps", completed_steps),
                         ("strategy_capital", strategy_capital)]:
            monkeypatch.setattr(repo, name, fn)


class FakeMetrics:
    """Counters that accept anything."""

    class _C:
        def labels(self, *_a: Any) -> FakeMetrics._C:
            return self

        def inc(self) -> None:
            pass

    def __init__(self) -> None:
        self.transitions = self.steps = self.workflows = self.rejected = self._C()


def orchestrator(allocator: FakePeer, oms: FakePeer | None = None, attempts: int = 3) -> Orchestrator:
    settings = StrategySettings(STRATEGY_DATABASE_URL="postgresql://x/y", STRATEGY_CALL_ATTEMPTS=attempts,
                                STRATEGY_RETRY_BASE_S=0.001, STRATEGY_RETRY_MAX_S=0.002)
    return Orchestrator(None, settings, owner="h:1", actor="strategy-orchestrator",  # type: ignore[arg-type]
                        allocator=allocator, oms=oms or FakePeer(), sync=None,  # type: ignore[arg-type]
                        metrics=FakeMetrics())  # type: ignore[arg-type]


def test_a_start_workflow_succeeds_with_both_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = FakeRepo()
    repo.install(monkeypatch)
    peer = FakePeer({
        ("PUT", "/v1/strategies/s1/target"): [CallResult("retry", None, None, "down"), CallResult("ok", 200, {})],
        ("POST", "/v1/strategies/s1/allocate"): [CallResult("ok", 200, {"capital": {"allocated": "5", "currency": "USD"},
                                                                        "allocation": {"id": 1}})],
    })
    asyncio.run(orchestrator(peer)._run(WF, "s1", "start"))
    assert repo.steps == [("set_target", 1, "retry"), ("set_target", 2, "ok"), ("allocate", 1, "ok")]
    assert repo.finished == [("succeeded", "capital target set; capital allocated: 5 USD (allocation run 1)")]


def test_retries_are_bounded_and_end_in_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = FakeRepo()
    repo.install(monkeypatch)
    peer = FakePeer({("PUT", "/v1/strategies/s1/target"): [CallResult("retry", None, None, "capital-allocator unreachable")]})
    asyncio.run(orchestrator(peer, attempts=4)._run(WF, "s1", "start"))
    assert repo.steps == [("set_target", n, "retry") for n in (1, 2, 3)] + [("set_target", 4, "exhausted")]
    assert repo.finished == [("failed", "set_target failed: capital-allocator: capital-allocator unreachable "
                                        "(gave up after 4 attempts)")]


def test_a_refusal_fails_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = FakeRepo()
    repo.install(monkeypatch)
    peer = FakePeer({
        ("PUT", "/v1/strategies/s1/target"): [CallResult("ok", 200, {})],
        ("POST", "/v1/strategies/s1/allocate"): [refused(409, "infeasible_minimums", "too much")],
    })
    asyncio.run(orchestrator(peer)._run(WF, "s1", "start"))
    assert repo.steps[-1] == ("allocate", 1, "refused")
    assert repo.finished == [("failed", "allocate failed: capital-allocator: HTTP 409 infeasible_minimums: too much")]


def test_a_lost_lease_stops_without_finishing(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = FakeRepo(lease_ok=2)
    repo.install(monkeypatch)
    peer = FakePeer({("PUT", "/v1/strategies/s1/target"): [CallResult("retry", None, None, "down")]})
    asyncio.run(orchestrator(peer, attempts=10)._run(WF, "s1", "start"))
    assert repo.steps == [("set_target", 1, "retry"), ("set_target", 2, "retry")]
    assert repo.finished == []


def test_a_resumed_workflow_skips_the_steps_already_done(monkeypatch: pytest.MonkeyPatch) -> None:
    repo = FakeRepo(done={"cancel_orders": {"summary": "open orders cancelled (3 cancelled)"}})
    repo.install(monkeypatch)
    allocator = FakePeer({("POST", "/v1/strategies/s1/release"): [CallResult("ok", 200, {"allocation": {"id": 9}})]})
    oms = FakePeer()
    asyncio.run(orchestrator(allocator, oms)._run(WF, "s1", "stop"))
    assert oms.calls == [] and repo.steps == [("release", 1, "ok")]
    assert repo.finished == [("succeeded", "open orders cancelled (3 cancelled); capital released")]


def test_settings_reject_a_lease_shorter_than_an_attempt() -> None:
    with pytest.raises(ValueError, match="STRATEGY_WORKFLOW_LEASE_S"):
        StrategySettings(STRATEGY_DATABASE_URL="postgresql://x/y", STRATEGY_WORKFLOW_LEASE_S=5,
                         STRATEGY_CALL_TIMEOUT_S=4, STRATEGY_RETRY_MAX_S=2)
    with pytest.raises(ValueError, match="postgresql://"):
        StrategySettings(STRATEGY_DATABASE_URL="mysql://x/y")
    with pytest.raises(ValueError, match="http"):
        StrategySettings(STRATEGY_DATABASE_URL="postgresql://x/y", STRATEGY_OMS_URL="ftp://x")
    s = StrategySettings(STRATEGY_DATABASE_URL="postgresql://x/y", STRATEGY_OMS_URL="http://h:1/ ",
                         STRATEGY_CAPITAL_ALLOCATOR_URL="")
    assert s.oms_url == "http://h:1" and s.capital_allocator_url is None
