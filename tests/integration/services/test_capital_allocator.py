"""capital-allocator over HTTP: a real subprocess on embedded PostgreSQL/Redis, tokens from the real auth-service.

Covers auth (a token from auth accepted, a revoked one rejected, roles per
endpoint), the portfolio and targets, allocation runs (allocate / release /
rebalance, dry runs, infeasible targets leaving nothing changed) and their
history, reservations (idempotent on the order id, insufficient capital,
release, cumulative consume), two replicas staying consistent through the
database, and concurrent reservations never over-committing a strategy.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """A thin client for one capital-allocator replica."""

    def __init__(self, url: str, token: str) -> None:
        self.url = url
        self.token = token
        self.http = httpx.Client(base_url=url, timeout=10)

    def call(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, path, headers=bearer(token or self.token), **kwargs)

    def ok(self, method: str, path: str, token: str | None = None, status: int = 200, **kwargs: Any) -> Any:
        resp = self.call(method, path, token, **kwargs)
        assert resp.status_code == status, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None

    def portfolio(self, nav: str, buffer: str = "0", **extra: Any) -> Any:
        return self.ok("PUT", "/v1/portfolio", json={"nav": nav, "cash_buffer_pct": buffer, **extra})

    def target(self, strategy: str, weight: str, status: int | None = None, **bounds: Any) -> Any:
        resp = self.call("PUT", f"/v1/strategies/{strategy}/target", json={"weight": weight, **bounds})
        assert resp.status_code in ((status,) if status else (200, 201)), resp.text
        return resp.json()

    def capital(self, strategy: str, token: str | None = None) -> dict[str, Any]:
        return self.ok("GET", f"/v1/strategies/{strategy}/capital", token)

    def reserve(self, strategy: str, order_id: str, amount: str, token: str | None = None, **extra: Any) -> httpx.Response:
        return self.call("POST", f"/v1/strategies/{strategy}/reservations", token,
                         json={"order_id": order_id, "amount": amount, **extra})

    def metric(self, name: str, **labels: str) -> float:
        total = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture
def ca_env(postgres: Any) -> dict[str, str]:
    """Env for a capital-allocator on a fresh database (fast poll so replica tests stay quick)."""
    db = f"capital_{uuid.uuid4().hex[:12]}"
    postgres.create_database(db)
    return {"AETHER_SERVICE_NAME": "capital-allocator", "CAPITAL_ALLOCATOR_DB_URL": postgres.dsn(db),
            "CAPITAL_ALLOCATOR_CACHE_POLL_S": "0.5"}


@pytest.fixture
def api(start_service: Any, ca_env: dict[str, str], admin_token: str) -> Api:
    return Api(start_service("capital_allocator", ca_env).url, admin_token)


def wait_for(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_health_metrics_and_start_up(api: Api) -> None:
    health = api.http.get("/healthz")
    assert health.status_code == 200, health.text
    checks = health.json()["checks"]
    assert checks["database"] == "ok" and checks["capital_cache"] == "ok" and checks["sessions"] == "ok"
    assert checks["timescaledb"].startswith(("absent", "present"))
    assert "capital_amount" in api.http.get("/metrics").text
    assert api.http.get("/v1/strategies").status_code == 401


def test_a_token_from_auth_is_accepted_and_a_revoked_one_rejected(
    api: Api, auth_service: Any, make_user: Any, service_token: Any
) -> None:
    _, _, viewer = make_user("viewer")
    assert api.call("GET", "/v1/strategies", viewer).status_code == 200
    resp = httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(viewer), timeout=10)
    assert resp.status_code == 204
    revoked = api.call("GET", "/v1/strategies", viewer)
    assert revoked.status_code == 401 and revoked.headers["www-authenticate"] == "Bearer"
    assert api.call("GET", "/v1/strategies", viewer + "x").status_code == 401

    oms = service_token("test-client")
    api.portfolio("1000")
    api.target("s1", "1")
    api.ok("POST", "/v1/strategies/s1/allocate")
    assert api.reserve("s1", "o-1", "10", oms).status_code == 201
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(oms), timeout=10).status_code == 204
    assert api.reserve("s1", "o-2", "10", oms).status_code == 401


def test_roles_per_endpoint(api: Api, make_user: Any, service_token: Any) -> None:
    _, _, viewer = make_user("viewer")
    _, _, trader = make_user("trader")
    _, _, risk = make_user("risk-officer")
    oms = service_token("test-client")
    body = {"nav": "1000"}
    for token in (viewer, trader, oms):
        resp = api.call("PUT", "/v1/portfolio", token, json=body)
        assert resp.status_code == 403 and resp.json()["error"] == "forbidden"
    assert api.call("PUT", "/v1/portfolio", risk, json=body).status_code == 200
    assert api.call("PUT", "/v1/strategies/s1/target", risk, json={"weight": "1"}).status_code == 201
    assert api.call("PUT", "/v1/strategies/s1/target", trader, json={"weight": "2"}).status_code == 403
    assert api.call("POST", "/v1/rebalance", viewer).status_code == 403
    # allocate / release: the strategy-orchestrator's service token, risk officers, admin
    assert api.call("POST", "/v1/strategies/s1/allocate", trader).status_code == 403
    assert api.call("POST", "/v1/strategies/s1/allocate", oms).status_code == 200
    # reservations: service tokens and admin only
    assert api.reserve("s1", "o-r", "1", risk).status_code == 403
    assert api.reserve("s1", "o-t", "1", trader).status_code == 403
    assert api.reserve("s1", "o-s", "1", oms).status_code == 201
    assert api.reserve("s1", "o-a", "1").status_code == 201
    # reads: any authenticated role
    for token in (viewer, trader, risk, oms):
        assert api.capital("s1", token)["reserved"] == "2"
        assert api.call("GET", "/v1/allocations/history", token).status_code == 200
        assert api.call("GET", "/v1/strategies/s1/reservations", token).status_code == 200


def test_allocation_runs_and_their_history(api: Api, make_user: Any) -> None:
    assert api.call("POST", "/v1/rebalance").json()["error"] == "nav_not_set"
    assert api.call("GET", "/v1/portfolio").status_code == 404
    assert api.call("POST", "/v1/strategies/ghost/allocate").json()["error"] == "strategy_not_found"
    p = api.portfolio("1000000", "10", currency="usd")
    assert (p["nav"], p["allocatable"], p["currency"], p["precision"]) == ("1000000", "900000.00", "USD", 2)
    assert api.target("alpha", "3")["active"] is False
    api.target("beta", "1", max_capital="200000")
    api.target("gamma", "1", min_capital="50000")
    assert api.capital("alpha")["allocated"] == "0"

    _, _, risk = make_user("risk-officer")
    first = api.ok("POST", "/v1/strategies/alpha/allocate", risk, json={"reason": "start alpha"})
    assert first["capital"]["allocated"] == "900000.00" and first["capital"]["active"] is True
    run = first["allocation"]
    assert (run["trigger"], run["strategy"], run["reason"], run["actor_kind"]) == ("allocate", "alpha", "start alpha", "user")
    assert run["inputs"]["nav"] == "1000000" and [t["strategy"] for t in run["inputs"]["targets"]] == ["alpha"]

    second = api.ok("POST", "/v1/strategies/beta/allocate")["allocation"]
    lines = {line["strategy"]: line for line in second["outputs"]["lines"]}
    assert lines["alpha"]["allocated"] == "700000.00" and lines["alpha"]["previous"] == "900000.00"
    assert lines["beta"]["allocated"] == "200000.00" and lines["beta"]["binding"] == "max"
    assert second["outputs"]["buffer"] == "100000.00" and second["outputs"]["unallocated"] == "0.00"
    assert api.capital("alpha")["allocation_id"] == second["id"]

    # Changing targets takes effect at the next run; a dry run shows it without storing anything.
    api.target("alpha", "1")
    dry = api.ok("POST", "/v1/rebalance", json={"dry_run": True})
    assert dry["id"] is None and dry["dry_run"] is True
    assert {ln["strategy"]: ln["allocated"] for ln in dry["outputs"]["lines"]} == {"alpha": "700000.00", "beta": "200000.00"}
    api.target("beta", "1", max_capital="600000")
    dry = api.ok("POST", "/v1/rebalance", json={"dry_run": True})
    assert {ln["strategy"]: ln["allocated"] for ln in dry["outputs"]["lines"]} == {"alpha": "450000.00", "beta": "450000.00"}
    assert api.capital("alpha")["allocated"] == "700000.00"

    rebalance = api.ok("POST", "/v1/rebalance", json={"reason": "targets changed"})
    assert rebalance["trigger"] == "rebalance" and rebalance["strategy"] is None
    assert api.capital("beta")["allocated"] == "450000.00"

    released = api.ok("POST", "/v1/strategies/alpha/release")
    assert released["capital"]["allocated"] == "0.00"
    assert released["capital"]["active"] is False
    assert released["allocation"]["outputs"]["released"] == ["alpha"]
    assert api.capital("beta")["allocated"] == "600000.00"  # capped; the rest stays unallocated
    assert released["allocation"]["outputs"]["unallocated"] == "300000.00"

    history = api.ok("GET", "/v1/allocations/history")
    assert [h["trigger"] for h in history["items"]] == ["release", "rebalance", "allocate", "allocate"]
    assert history["items"][-1]["actor"] != history["items"][-2]["actor"]  # risk officer, then admin
    assert history["next_before"] is None
    page = api.ok("GET", "/v1/allocations/history", params={"limit": 2})
    assert len(page["items"]) == 2 and page["next_before"] == page["items"][1]["id"]
    older = api.ok("GET", "/v1/allocations/history", params={"limit": 2, "before": page["next_before"]})
    assert [h["id"] for h in older["items"]] == [h["id"] for h in history["items"][2:]]
    only_beta = api.ok("GET", "/v1/allocations/history", params={"strategy": "beta"})["items"]
    assert [h["trigger"] for h in only_beta] == ["release", "rebalance", "allocate"]
    assert api.ok("GET", "/v1/allocations/history", params={"trigger": "allocate"})["items"][0]["strategy"] == "beta"
    one = api.ok("GET", f"/v1/allocations/history/{rebalance['id']}")
    assert one == {**rebalance, "dry_run": False}
    assert api.call("GET", "/v1/allocations/history/999999").json()["error"] == "allocation_not_found"

    current = api.ok("GET", "/v1/allocations/current")
    assert current["allocated"] == "600000.00" and current["portfolio"]["nav"] == "1000000"
    assert [s["strategy"] for s in current["strategies"]] == ["alpha", "beta", "gamma"]


def test_infeasible_targets_are_a_409_and_change_nothing(api: Api, ca_env: dict[str, str]) -> None:
    api.portfolio("1000", "10")
    api.target("a", "1", min_capital="600")
    api.target("b", "1", min_capital="250")
    api.ok("POST", "/v1/strategies/a/allocate")
    api.ok("POST", "/v1/strategies/b/allocate")
    before = api.ok("GET", "/v1/allocations/history")["items"]
    api.target("b", "1", min_capital="350")
    resp = api.call("POST", "/v1/rebalance")
    assert resp.status_code == 409
    err = resp.json()
    assert err["error"] == "infeasible_minimums" and "exceed the allocatable capital" in err["message"]
    assert err["detail"] == {"required": "950.00", "allocatable": "900.00", "minimums": {"a": "600.00", "b": "350.00"}}
    api.target("c", "1", min_weight="0.5", max_capital="100")
    bounds = api.call("POST", "/v1/strategies/c/allocate")
    assert bounds.status_code == 409 and bounds.json()["error"] == "infeasible_bounds"
    assert api.capital("c")["active"] is False
    assert api.ok("GET", "/v1/allocations/history")["items"] == before
    assert (api.capital("a")["allocated"], api.capital("b")["allocated"]) == ("600.00", "300.00")

    # Releasing a strategy still works when the rest cannot be rebalanced: it goes to 0, the others stay.
    api.target("c", "0")
    api.portfolio("500", "0")  # a's minimum alone no longer fits
    out = api.ok("POST", "/v1/strategies/b/release")["allocation"]
    assert out["rebalanced"] is False and "infeasible" in out["note"] and out["outputs"]["released"] == ["b"]
    assert api.capital("b")["allocated"] == "0.00" and api.capital("a")["allocated"] == "600.00"
    with psycopg.connect(ca_env["CAPITAL_ALLOCATOR_DB_URL"], autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM allocation_runs")


def test_reservations_are_idempotent_and_track_available(api: Api, service_token: Any, ca_env: dict[str, str]) -> None:
    oms = service_token("test-client")
    api.portfolio("1000")
    api.target("s1", "1")
    assert api.reserve("s1", "o-0", "1", oms).json()["error"] == "strategy_inactive"
    api.ok("POST", "/v1/strategies/s1/allocate")

    created = api.reserve("s1", "o-1", "400.50", oms, account="acct-1")
    assert created.status_code == 201
    body = created.json()
    assert body["replayed"] is False and body["reservation"]["status"] == "open"
    assert body["reservation"]["created_by"] == "test-client" and body["reservation"]["remaining"] == "400.50"
    assert body["capital"]["reserved"] == "400.50" and body["capital"]["available"] == "599.50"
    replay = api.reserve("s1", "o-1", "400.5", oms, account="acct-1")
    assert replay.status_code == 200 and replay.json()["replayed"] is True
    assert replay.json()["reservation"] == body["reservation"]
    conflict = api.reserve("s1", "o-1", "10", oms, account="acct-1")
    assert conflict.status_code == 409 and conflict.json()["error"] == "reservation_conflict"
    assert conflict.json()["detail"]["amount"] == "400.50"
    too_much = api.reserve("s1", "o-2", "599.51", oms)
    assert too_much.status_code == 409 and too_much.json()["error"] == "insufficient_capital"
    assert too_much.json()["detail"] == {"available": "599.50", "requested": "599.51"}
    assert api.reserve("s1", "o-2", "599.50", oms).status_code == 201
    assert api.capital("s1")["available"] == "0.00"

    rel = api.ok("POST", "/v1/strategies/s1/reservations/o-2/release", oms)
    assert rel["reservation"]["status"] == "released" and rel["capital"]["available"] == "599.50"
    again = api.ok("POST", "/v1/strategies/s1/reservations/o-2/release", oms)
    assert again["replayed"] is True and again["capital"]["reserved"] == "400.50"

    path = "/v1/strategies/s1/reservations/o-1/consume"
    part = api.ok("POST", path, oms, json={"consumed_total": "100"})
    assert part["reservation"]["remaining"] == "300.50" and part["capital"]["reserved"] == "300.50"
    stale = api.ok("POST", path, oms, json={"consumed_total": "50"})
    assert stale["replayed"] is True and stale["reservation"]["consumed"] == "100"
    final = api.ok("POST", path, oms, json={"consumed_total": "390", "final": True})
    assert final["reservation"]["status"] == "consumed" and final["reservation"]["remaining"] == "0"
    assert final["capital"]["reserved"] == "0.00" and final["capital"]["available"] == "1000.00"
    assert api.ok("POST", path, oms, json={"consumed_total": "390", "final": True})["replayed"] is True
    late = api.ok("POST", "/v1/strategies/s1/reservations/o-2/consume", oms, json={"consumed_total": "5"})
    assert late["reservation"]["status"] == "released" and late["reservation"]["consumed"] == "5"
    assert late["capital"]["reserved"] == "0.00"

    assert api.call("POST", "/v1/strategies/s1/reservations/nope/release", oms).json()["error"] == "reservation_not_found"
    assert api.call("POST", "/v1/strategies/s2/reservations/o-1/release", oms).json()["error"] == "strategy_not_found"
    listed = api.ok("GET", "/v1/strategies/s1/reservations", params={"status": "released"})
    assert [r["order_id"] for r in listed["items"]] == ["o-2"]
    assert api.ok("GET", "/v1/strategies/s1/reservations/o-1")["consumed"] == "390"

    # The same order id cannot hold capital of another strategy.
    api.target("s2", "1")
    api.ok("POST", "/v1/strategies/s2/allocate")
    other = api.reserve("s2", "o-1", "400.50", oms, account="acct-1")
    assert other.status_code == 409 and other.json()["error"] == "reservation_conflict"

    # Deleting: not while active or while reservations are open.
    assert api.reserve("s2", "o-3", "5", oms).status_code == 201
    assert api.call("DELETE", "/v1/strategies/s2").json()["error"] == "strategy_active"
    api.ok("POST", "/v1/strategies/s2/release")
    assert api.capital("s2")["available"] == "-5.00"  # released with an open order: nothing more to reserve
    assert api.call("DELETE", "/v1/strategies/s2").json()["error"] == "open_reservations"
    api.ok("POST", "/v1/strategies/s2/reservations/o-3/release", oms)
    assert api.call("DELETE", "/v1/strategies/s2").status_code == 204
    assert api.call("GET", "/v1/strategies/s2/capital").status_code == 404
    assert api.metric("capital_reservation_calls_total", action="reserve", outcome="insufficient_capital") == 1
    assert api.metric("capital_reservation_calls_total", action="reserve", outcome="replayed") == 1

    with psycopg.connect(ca_env["CAPITAL_ALLOCATOR_DB_URL"], autocommit=True) as conn:
        rows = conn.execute(
            """SELECT s.strategy, s.reserved, coalesce(sum(greatest(r.amount - r.consumed, 0))
                   FILTER (WHERE r.status = 'open'), 0)
               FROM strategies s LEFT JOIN reservations r USING (strategy) GROUP BY s.strategy, s.reserved"""
        ).fetchall()
    assert rows and all(reserved == open_sum for _, reserved, open_sum in rows)


def test_bad_input_is_a_clear_4xx(api: Api) -> None:
    cases = [
        ("PUT", "/v1/portfolio", {"nav": "-1"}),
        ("PUT", "/v1/portfolio", {"nav": "1", "surprise": True}),
        ("PUT", "/v1/strategies/bad%20id/target", {"weight": "1"}),
        ("PUT", "/v1/strategies/s1/target", {"weight": "1", "min_capital": "10", "max_capital": "1"}),
        ("POST", "/v1/strategies/s1/reservations", {"order_id": "o", "amount": "1e300"}),
        ("POST", "/v1/rebalance", {"dry_run": "maybe"}),
    ]
    for method, path, body in cases:
        resp = api.call(method, path, json=body)
        assert resp.status_code == 422, (path, body, resp.text)
        assert resp.json()["error"] == "validation_error"
    assert api.call("GET", "/v1/allocations/history", params={"limit": 0}).status_code == 422
    assert api.call("GET", "/v1/strategies/" + "x" * 65 + "/capital").status_code == 422


def test_replicas_stay_consistent_and_never_over_commit(
    start_service: Any, ca_env: dict[str, str], admin_token: str, service_token: Any
) -> None:
    a = Api(start_service("capital_allocator", ca_env).url, admin_token)
    b = Api(start_service("capital_allocator", ca_env).url, admin_token)
    oms = service_token("test-client")
    a.portfolio("1000")
    a.target("s1", "1")
    wait_for(lambda: b.call("GET", "/v1/strategies/s1/capital").status_code == 200)
    b.ok("POST", "/v1/strategies/s1/allocate")
    wait_for(lambda: a.capital("s1")["allocated"] == "1000.00")

    assert a.reserve("s1", "x-1", "100", oms).status_code == 201
    wait_for(lambda: b.capital("s1")["reserved"] == "100")
    assert b.reserve("s1", "x-1", "100", oms).status_code == 200  # idempotent across replicas

    # 60 concurrent reservations of 25 over both replicas: exactly 36 fit the 900 left.
    def reserve(i: int) -> int:
        return (a if i % 2 else b).reserve("s1", f"c-{i}", "25", oms).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(reserve, range(60)))
    assert codes.count(201) == 36 and codes.count(409) == 24
    for replica in (a, b):
        wait_for(lambda r=replica: r.capital("s1")["available"] == "0.00")
    assert a.capital("s1") == b.capital("s1")

    a.portfolio("2000")
    b.ok("POST", "/v1/rebalance")
    wait_for(lambda: a.capital("s1")["allocated"] == "2000.00")
    assert a.capital("s1")["available"] == "1000.00"
