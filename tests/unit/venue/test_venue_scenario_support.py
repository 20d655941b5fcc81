"""What scenarios use on the venue: replay cursors, every order of an account, fee-tier reset, seeded fault rules."""

from __future__ import annotations

import pytest

from sandbox.venue.trading.app import create_trading_app
from sandbox.venue.trading.faults import FaultPlan, FaultSpec


@pytest.fixture
def app(catalog, clock):
    return create_trading_app(catalog, seed=3, clock=clock)


@pytest.fixture
def admin(app, app_client):
    return app_client(app)


def _cursor(admin, name: str, **body):
    answer = admin.request("POST", "/admin/market/replay", json={"cursor": name, **body})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_cursor_replays_one_pair_step_by_step_and_the_same_steps_give_the_same_book(admin) -> None:
    first = _cursor(admin, "a", session="v2-book10-majors", pair="ETHUSD", frames=1)
    assert first["pair"] == "XETHZUSD" and first["applied"] == 1 and first["trades_total"] == 0
    assert first["best_bid"] == ["1774.99", "1.24552674"] and first["best_ask"] == ["1775.01", "0.56450518"]
    engine_view = admin.request("GET", "/admin/book/ETHUSD?depth=1").json()
    assert engine_view["source"] == "synthetic" and engine_view["bids"][0][:2] == ["1774.99", "1.24552674"]
    moved = _cursor(admin, "a", trades=1)
    assert moved["trades"] == [{"price": "1774.99", "qty": "0.27704391", "side": "sell"}]
    again = _cursor(admin, "b", session="v2-book10-majors", pair="ETHUSD", frames=1)
    again = _cursor(admin, "b", trades=1)
    assert (again["position"], again["trades"], again["best_bid"]) == (moved["position"], moved["trades"], moved["best_bid"])


def test_a_resting_order_fills_when_the_cursor_trades_through_it(admin) -> None:
    account = admin.request("POST", "/admin/accounts", json={"balances": {"ZUSD": "10000"}}).json()
    trader = admin.signed(account["api_key"], account["api_secret"])
    _cursor(admin, "c", session="v2-book10-majors", pair="ETHUSD", frames=1)
    placed = trader.call("AddOrder", pair="ETHUSD", type="buy", ordertype="limit", volume="0.1", price="1774.90").json()
    assert placed["error"] == []
    _cursor(admin, "c", trades=4)
    orders = admin.request("GET", f"/admin/accounts/{account['account_id']}/orders").json()
    assert [(o["status"], o["vol_exec"], o["cost"]) for o in orders] == [("closed", "0.1", "177.49000")]
    assert admin.request("DELETE", "/admin/market/replay/c").json() == {"closed": True}
    assert admin.request("GET", "/admin/book/ETHUSD").json()["source"] != "synthetic"


def test_unknown_sessions_and_cursors_are_404(admin) -> None:
    assert admin.request("POST", "/admin/market/replay", json={"cursor": "x", "session": "nope", "pair": "XBTUSD"}).status_code == 404
    assert admin.request("POST", "/admin/market/replay", json={"cursor": "never", "frames": 1}).status_code == 404


def test_account_orders_filter_by_client_order_id(admin) -> None:
    account = admin.request("POST", "/admin/accounts", json={"balances": {"ZUSD": "10000"}}).json()
    trader = admin.signed(account["api_key"], account["api_secret"])
    admin.request("PUT", "/admin/book/XBTUSD", json={"bids": [["29990", "1"]], "asks": [["30010", "1"]]})
    for cid in ("one", "two"):
        assert trader.call("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", volume="0.01",
                           price="29000", cl_ord_id=cid).json()["error"] == []
    found = admin.request("GET", f"/admin/accounts/{account['account_id']}/orders?cl_ord_id=two").json()
    assert [(o["cl_ord_id"], o["status"]) for o in found] == [("two", "open")]


def test_patching_an_account_resets_its_fee_volume_and_tier(admin) -> None:
    account = admin.request("POST", "/admin/accounts", json={"volume_30d": "200000"}).json()
    patched = admin.request("PATCH", f"/admin/accounts/{account['account_id']}", json={"volume_30d": "0", "tier": "pro"})
    assert patched.status_code == 200
    assert (patched.json()["volume_30d"], patched.json()["tier"]) == ("0", "pro")
    assert admin.request("PATCH", f"/admin/accounts/{account['account_id']}", json={"tier": "gold"}).status_code == 400


def test_a_rule_with_its_own_seed_draws_the_same_whatever_else_drew() -> None:
    def fired(plan: FaultPlan, noise: int) -> list[bool]:
        plan.add(FaultSpec(action="error", endpoint="Balance", probability=0.5), 0)  # shares the venue's generator
        rule = plan.add(FaultSpec(action="error", endpoint="AddOrder", probability=0.5, seed=7), 0)
        for _ in range(noise):
            plan.for_request("Balance", None)
        out = []
        for _ in range(20):
            out.append(rule.id in plan.for_request("AddOrder", None).rule_ids)
        return out

    assert fired(FaultPlan(1), 0) == fired(FaultPlan(2), 13)
    assert 0 < sum(fired(FaultPlan(1), 0)) < 20
