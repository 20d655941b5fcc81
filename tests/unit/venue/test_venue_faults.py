"""Scripted faults: errors, latency, dropped responses, status changes, WebSocket drops; seeded."""

from __future__ import annotations

import json
import time

import pytest

from sandbox.venue.trading.app import create_trading_app
from sandbox.venue.trading.faults import FaultPlan, FaultSpec
from sandbox.venue.trading.rest import DropResponse

LIMIT = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.0", "volume": "0.01"}


@pytest.fixture
def app(catalog, clock):
    application = create_trading_app(catalog, seed=11, clock=clock)
    venue = application.state.trading
    venue.engine.set_book(venue.pairs.get("XBTUSD"), [("29990.0", "1.0")], [("30010.0", "5")])
    return application


@pytest.fixture
def venue(app):
    return app.state.trading


@pytest.fixture
def admin(app, app_client):
    return app_client(app)


@pytest.fixture
def client(admin):
    created = admin.request("POST", "/admin/accounts", json={"balances": {"ZUSD": "100000", "XXBT": "1"}}).json()
    return admin.signed(created["api_key"], created["api_secret"])


def post_fault(admin, **spec) -> dict:
    resp = admin.request("POST", "/admin/faults", json=spec)
    assert resp.status_code == 201, resp.text
    return resp.json()[0]


def doc(resp) -> dict:
    assert resp.status_code == 200
    return json.loads(resp.content)


def test_an_error_fault_answers_krakens_error_without_executing(admin, client, venue) -> None:
    post_fault(admin, action="error", endpoint="AddOrder", errors=["EService:Unavailable"], count=1)
    assert doc(client.call("AddOrder", **LIMIT)) == {"error": ["EService:Unavailable"]}
    assert not venue.accounts.get("AA0001").orders
    assert doc(client.call("AddOrder", **LIMIT))["error"] == []  # count 1: spent


def test_an_error_after_the_fact_executes_the_call_anyway(admin, client, venue) -> None:
    post_fault(admin, action="error", endpoint="AddOrder", errors=["EService:Busy"], phase="after")
    assert doc(client.call("AddOrder", **LIMIT, userref=3)) == {"error": ["EService:Busy"]}
    assert [o.userref for o in venue.accounts.get("AA0001").open_orders.values()] == [3]


def test_faults_match_endpoint_and_key(admin, client) -> None:
    post_fault(admin, action="error", endpoint=["CancelAll"], errors=["EGeneral:Internal error"])
    post_fault(admin, action="error", endpoint="*", api_key="someone-else", errors=["EService:Unavailable"])
    assert doc(client.call("Balance"))["error"] == []
    assert doc(client.call("CancelAll"))["error"] == ["EGeneral:Internal error"]


def test_latency_delays_the_call(admin, client) -> None:
    post_fault(admin, action="latency", endpoint="Balance", latency_ms=150)
    started = time.monotonic()
    assert doc(client.call("Balance"))["error"] == []
    assert time.monotonic() - started >= 0.15


def test_a_response_dropped_after_accept_leaves_a_live_order_to_reconcile(admin, client, venue) -> None:
    post_fault(admin, action="drop_after_accept", endpoint="AddOrder", count=1)
    with pytest.raises(DropResponse):  # in-process there is no socket to reset: the call fails
        client.call("AddOrder", **LIMIT, cl_ord_id="reconcile-me")
    found = doc(client.call("OpenOrders", cl_ord_id="reconcile-me"))["result"]["open"]
    assert len(found) == 1


def test_a_response_dropped_before_the_call_leaves_nothing(admin, client, venue) -> None:
    post_fault(admin, action="drop", endpoint="AddOrder", count=1)
    with pytest.raises(DropResponse):
        client.call("AddOrder", **LIMIT)
    assert not venue.accounts.get("AA0001").orders


def test_a_cdn_style_5xx(admin, client, venue) -> None:
    post_fault(admin, action="drop_after_accept", endpoint="AddOrder", mode="http", http_status=520)
    resp = client.call("AddOrder", **LIMIT)
    assert resp.status_code == 520 and "text/html" in resp.headers["content-type"]
    assert len(venue.accounts.get("AA0001").orders) == 1


def test_skip_count_and_listing(admin, client) -> None:
    rule = post_fault(admin, action="error", endpoint="Balance", skip=2, count=2)
    results = [doc(client.call("Balance"))["error"] for _ in range(6)]
    assert results == [[], [], ["EService:Unavailable"], ["EService:Unavailable"], [], []]
    listed = admin.request("GET", "/admin/faults").json()
    assert listed[0]["id"] == rule["id"] and listed[0]["seen"] == 4 and listed[0]["fired"] == 2
    assert admin.request("DELETE", f"/admin/faults/{rule['id']}").json() == {"removed": 1}
    assert admin.request("DELETE", "/admin/faults/f999").status_code == 404


def test_probability_is_drawn_from_the_seed() -> None:
    spec = FaultSpec(action="error", endpoint="AddOrder", probability=0.3)

    def failing(seed: int) -> list[int]:
        plan = FaultPlan(seed)
        plan.add(spec, 0.0)
        return [i for i in range(200) if plan.for_request("AddOrder", "k").errors_before]

    assert failing(1) == failing(1)
    assert failing(1) != failing(2)
    assert 30 < len(failing(1)) < 90


def test_a_timed_status_change_is_applied_then_restored(admin, client, venue, clock) -> None:
    post_fault(admin, action="status", status="cancel_only", delay_s=5, duration_s=10)
    assert doc(client.call("AddOrder", **LIMIT))["error"] == []
    clock.advance(5)
    venue.tick()
    assert venue.system_status == "cancel_only"
    assert doc(client.call("AddOrder", **LIMIT))["error"] == ["EService:Market in cancel_only mode"]
    clock.advance(10)
    venue.tick()
    assert venue.system_status == "online"


def test_a_timed_pair_status_change(admin, venue, clock) -> None:
    post_fault(admin, action="status", status="post_only", pair="ETHUSD")
    assert venue.pairs.status("XETHZUSD") == "post_only"  # delay 0: applied when posted


@pytest.mark.parametrize(
    "spec",
    [
        {"action": "explode"},
        {"action": "error", "errors": ["not a kraken error"]},
        {"action": "status", "status": "sideways"},
        {"action": "status", "status": "limit_only"},  # venue-wide limit_only does not exist
        {"action": "latency", "latency_ms": -1},
        {"action": "error", "surprise": 1},
    ],
)
def test_bad_fault_rules_are_refused(admin, spec) -> None:
    assert admin.request("POST", "/admin/faults", json=spec).status_code == 422


def test_a_list_of_rules_in_one_post(admin) -> None:
    resp = admin.request("POST", "/admin/faults", json=[{"action": "latency", "latency_ms": 1},
                                                          {"action": "error", "endpoint": "Balance"}])
    assert [r["id"] for r in resp.json()] == ["f1", "f2"]
    assert admin.request("DELETE", "/admin/faults").json() == {"removed": 2}


def test_a_market_data_disconnect_goes_through_the_venue_process_hook(admin, venue) -> None:
    dropped: list[str] = []
    venue.market_disconnect_hooks.append(lambda: dropped.append("market"))
    post_fault(admin, action="ws_disconnect", scope="market")
    assert dropped == ["market"]
    post_fault(admin, action="ws_disconnect")  # executions only (the default)
    assert dropped == ["market"]
