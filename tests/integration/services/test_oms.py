"""oms-service over HTTP: a real subprocess on embedded PostgreSQL, Redis, NATS and Kafka (Tansu), trading on the
real venue (``python -m sandbox.venue.trading``, which checks every API-Sign), with risk-service for the pre-trade
check and the kill switch, and tokens from the real auth-service.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_oms_support import KafkaTail, OmsApi, VenueProcess, bearer, oms_env, wait

from sandbox.services.oms.kraken_client import KrakenClient

pytestmark = pytest.mark.integration

D = Decimal
ACCOUNT = "acct-1"


@dataclass
class Stack:
    venue: VenueProcess
    venue_account: dict[str, Any]
    creds: Path
    risk: Any
    oms: Any
    api: OmsApi
    tail: KafkaTail
    env: dict[str, str]
    admin: str
    start: Callable[[str, dict[str, str]], Any]

    def restart_oms(self, **extra: str) -> None:
        self.oms.stop()
        self.oms = self.start("oms", {**self.env, **extra})
        self.api = OmsApi(self.oms.url, self.admin)


def login(auth: Any) -> str:
    resp = httpx.post(f"{auth.url}/v1/login", json={"username": "admin", "password": auth.admin_password}, timeout=10)
    resp.raise_for_status()
    return resp.json()["access_token"]


@pytest.fixture(scope="module")
def stack(
    start_service_shared: Callable[[str, dict[str, str]], Any], auth_service: Any, postgres: Any, redis_server: Any,
    nats_server: Any, kafka_broker: Any, service_log_dir: Path, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """The venue (synthetic XBT/USD book), risk-service following the OMS's fills, and the OMS."""
    tag = secrets.token_hex(4)
    topics = (f"oms.orders.it{tag}", f"oms.fills.it{tag}")
    kafka_broker.create_topics(list(topics), partitions=2)
    tail = KafkaTail(kafka_broker, list(topics))
    venue = VenueProcess(service_log_dir).start()
    try:
        creds = tmp_path_factory.mktemp("oms-kraken")
        account = venue.create_account(creds)
        venue.set_book("XBTUSD", bids=[["29990.0", "5"], ["29980.0", "5"]], asks=[["30010.0", "5"], ["30020.0", "5"]])
        for name in ("compliance", "diversification", "esg"):
            postgres.create_database(f"risk_{name}_o{tag}")
        risk = start_service_shared("risk", {
            "AETHER_SERVICE_NAME": "risk-service", "AETHER_AUTH_URL": auth_service.url,
            "AETHER_SESSION_REDIS_URL": redis_server.url,
            "RISK_COMPLIANCE_DATABASE_URL": postgres.dsn(f"risk_compliance_o{tag}"),
            "RISK_DIVERSIFICATION_DATABASE_URL": postgres.dsn(f"risk_diversification_o{tag}"),
            "RISK_ESG_DATABASE_URL": postgres.dsn(f"risk_esg_o{tag}"),
            "RISK_KAFKA_BOOTSTRAP": kafka_broker.bootstrap, "RISK_NATS_URL": nats_server.url,
            "RISK_FILLS_TOPIC": topics[1], "RISK_CONSUMER_GROUP": f"risk-oms-{tag}",
        })
        env = oms_env(postgres=postgres, redis_server=redis_server, kafka_broker=kafka_broker, nats_server=nats_server,
                      venue=venue, credentials_dir=creds, database=f"oms_it_{tag}", topics=topics, auth=auth_service,
                      OMS_RISK_URL=risk.url)
        oms = start_service_shared("oms", env)
        admin = login(auth_service)
        yield Stack(venue, account, creds, risk, oms, OmsApi(oms.url, admin), tail, env, admin, start_service_shared)
    finally:
        tail.close()
        venue.stop()


def order_events(stack: Stack, order_id: str) -> list[dict[str, Any]]:
    return stack.tail.matching(lambda t, d: t.startswith("oms.orders") and d.get("order_id") == order_id)


# ------------------------------------------------------------------------------------------------ auth


def test_a_token_from_auth_is_accepted_and_a_revoked_one_rejected(stack: Stack, make_user: Any,
                                                                  auth_service: Any) -> None:
    _, _, trader = make_user("trader")
    assert stack.api.call("GET", "/v1/orders", token=trader).status_code == 200
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(trader), timeout=10).status_code == 204
    resp = stack.api.call("GET", "/v1/orders", token=trader)
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{stack.oms.url}/v1/orders", timeout=10).status_code == 401
    _, _, viewer = make_user("viewer")
    assert stack.api.call("GET", "/v1/orders", token=viewer).status_code == 200
    assert stack.api.place(token=viewer).status_code == 403
    assert stack.api.call("POST", "/v1/reconcile", token=viewer).status_code == 403
    _, _, trader2 = make_user("trader")
    assert stack.api.call("POST", "/v1/reconcile", token=trader2).status_code == 403


# ------------------------------------------------------------------------------------------------ orders


def test_an_order_reaches_the_venue_signed_and_is_tracked(stack: Stack, make_user: Any) -> None:
    _, _, trader = make_user("trader")
    resp = stack.api.place(token=trader, client_order_id="rest-1", qty="0.01", price="29000.0", userref=77)
    assert resp.status_code == 201, resp.text
    order = resp.json()
    assert order["state"] == "new" and order["txid"] and order["reasons"] == []
    assert (order["symbol"], order["qty"], order["price"], order["filled_qty"]) == ("XBT/USD", "0.01", "29000", "0")
    assert resp.headers["location"] == f"/v1/orders/{order['id']}"
    # The venue accepted the signed AddOrder: the order rests in its book with the OMS id as cl_ord_id.
    assert order["txid"] in stack.venue.open_txids(stack.venue_account["account_id"])
    detail = stack.api.order(order["id"])
    assert [(t["from_state"], t["to_state"]) for t in detail["transitions"]] == [(None, "pending_new"),
                                                                                  ("pending_new", "new")]
    assert all(t["at"] and t["reason"] for t in detail["transitions"])
    stack.tail.wait_for(lambda t, d: t.startswith("oms.orders") and d["order_id"] == order["id"]
                        and d["state"] == "new", what="the order's new event")
    listing = stack.api.call("GET", "/v1/orders", account=ACCOUNT, state="new").json()
    assert order["id"] in [o["id"] for o in listing["items"]]
    # and cancelled again
    resp = stack.api.call("DELETE", f"/v1/orders/{order['id']}", token=trader)
    assert resp.status_code == 200 and resp.json()["state"] == "canceled", resp.text
    assert order["txid"] not in stack.venue.open_txids(stack.venue_account["account_id"])
    assert stack.api.call("DELETE", f"/v1/orders/{order['id']}").json()["error"] == "order_not_open"


def test_the_venue_checks_the_signature(stack: Stack, tmp_path: Path) -> None:
    """The same key with another secret: the venue refuses every call (EAPI:Invalid signature)."""
    key = (stack.creds / "api_key").read_text().strip()
    import base64
    import os

    client = KrakenClient(stack.venue.url, key, base64.b64encode(os.urandom(64)).decode())
    import asyncio

    async def attempt() -> list[str]:
        try:
            await client.open_orders()
        except Exception as exc:  # noqa: BLE001
            return getattr(exc, "errors", [str(exc)])
        finally:
            await client.aclose()
        return []

    assert asyncio.run(attempt()) == ["EAPI:Invalid signature"]


def test_a_duplicate_client_order_id_returns_the_original_order(stack: Stack) -> None:
    cid = f"dup-{secrets.token_hex(4)}"
    results: list[httpx.Response] = []
    barrier = threading.Barrier(6)

    def send() -> None:
        barrier.wait()
        results.append(stack.api.place(client_order_id=cid, price="28000.0"))

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [200, 200, 200, 200, 200, 201], [r.text for r in results]
    assert len({r.json()["id"] for r in results}) == 1
    assert all(r.headers.get("idempotent-replay") == "true" for r in results if r.status_code == 200)
    order_id = results[0].json()["id"]
    # a later repeat, even with another body, answers the original
    again = stack.api.place(client_order_id=cid, price="1.0", qty="5")
    assert again.status_code == 200 and again.json()["id"] == order_id and again.json()["price"] == "28000"
    listing = stack.api.call("GET", "/v1/orders", account=ACCOUNT, limit=500).json()["items"]
    assert [o["id"] for o in listing if o["client_order_id"] == cid] == [order_id]
    account = stack.venue.account(stack.venue_account["account_id"])
    assert sum(1 for o in account["open"] if o["txid"] == stack.api.order(order_id)["txid"]) == 1
    stack.api.call("DELETE", f"/v1/orders/{order_id}")


def test_two_replicas_make_one_order_and_publish_each_fill_once(stack: Stack) -> None:
    replica = stack.start("oms", stack.env)
    try:
        other = OmsApi(replica.url, stack.admin)
        cid = f"dup2-{secrets.token_hex(4)}"
        results: list[httpx.Response] = []
        barrier = threading.Barrier(8)

        def send(api: OmsApi) -> None:
            barrier.wait()
            results.append(api.place(client_order_id=cid, qty="0.05", price="30010.0", account="acct-2r"))

        threads = [threading.Thread(target=send, args=(stack.api if i % 2 else other,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(r.status_code for r in results)[:-1] == [200] * 7, [r.text for r in results]
        assert len({r.json()["id"] for r in results}) == 1
        order_id = results[0].json()["id"]
        filled = stack.api.wait_state(order_id, "filled")
        assert other.order(order_id)["state"] == "filled"
        stack.tail.wait_for(lambda t, d: t.startswith("oms.fills") and d["order_id"] == order_id, what="the fill")
        wait(lambda: len(order_events(stack, order_id)) >= 3, "the order's events")
        # The replica that did not place the order held its events, then found them applied by the one that did
        # (after the grace period: both replicas have dealt with every execution event by now).
        tags = {api: api.call("GET", "/v1/status").json()["replica"]["tag"] for api in (stack.api, other)}
        assert len(set(tags.values())) == 2 and order_id[-8:] in tags.values()
        bystander = next(api for api, tag in tags.items() if tag != order_id[-8:])
        wait(lambda: owner_settled(bystander, "trade") >= 1, "the bystander to settle the held trade")
        wait(lambda: bystander.call("GET", "/v1/status").json()["executions_feed"]["held"] == 0, "nothing held")
        fills = stack.tail.matching(lambda t, d: t.startswith("oms.fills") and d["order_id"] == order_id)
        assert len({f["fill_id"] for f in fills}) == len(fills) == 1, fills
        states = [e["state"] for e in order_events(stack, order_id)]
        assert len(states) == len(set(states)), f"each transition published once: {states}"
        assert filled["filled_qty"] == "0.05"
    finally:
        replica.stop()


def owner_settled(api: OmsApi, kind: str) -> float:
    """How many ``kind`` executions events a replica found applied by the replica that placed the order."""
    line = f'oms_execution_events_total{{kind="{kind}",outcome="owner"}} '
    for row in api.http.get("/metrics").text.splitlines():
        if row.startswith(line):
            return float(row[len(line):])
    return 0.0


def test_a_replica_applies_the_events_of_a_stopped_replicas_orders(stack: Stack) -> None:
    replica = stack.start("oms", {**stack.env, "OMS_REPLICA_NAME": f"replica-b-{secrets.token_hex(3)}"})
    try:
        other = OmsApi(replica.url, stack.admin)
        resting = other.placed(account="acct-failover", qty="0.02", price="29510.0")
        assert resting["state"] == "new" and resting["id"][-8:] == other.call("GET", "/v1/status").json()[
            "replica"]["tag"]
    finally:
        replica.stop()
    # Only the stack's replica is left, with its open-order poll slowed down so that the held trade event, not the
    # poll, must record the fill.
    stack.restart_oms(OMS_POLL_INTERVAL_S="600", OMS_RECONCILE_ON_STARTUP="false")
    try:
        wait(lambda: stack.api.call("GET", "/v1/status").json()["executions_feed"]["connected"], "the feed")
        time.sleep(0.5)  # the sync that follows subscribing has run
        # A public trade at the resting buy's price fills it.
        stack.venue.admin("POST", "/trades", {"pair": "XBTUSD", "price": "29510.0", "qty": "0.02", "side": "sell"})
        filled = stack.api.wait_state(resting["id"], "filled")
        assert filled["filled_qty"] == "0.02"
        fill = stack.tail.wait_for(lambda t, d: t.startswith("oms.fills") and d["order_id"] == resting["id"],
                                   what="the fill on oms.fills")
        assert D(fill["qty"]) == D("0.02") and fill["account"] == "acct-failover"
        recorded = stack.api.call("GET", f"/v1/orders/{resting['id']}/fills").json()["items"]
        assert [f["source"] for f in recorded] == ["ws"], "from the held trade event, not the open-order poll"
    finally:
        stack.restart_oms()


def test_a_fill_reaches_kafka_positions_and_risk(stack: Stack) -> None:
    account = f"acct-fill-{secrets.token_hex(3)}"
    order = stack.api.placed(account=account, client_order_id="take-1", qty="0.5", price="30010.0", strategy="s-fill")
    filled = stack.api.wait_state(order["id"], "filled")
    assert (filled["filled_qty"], filled["avg_price"], filled["fee_currency"]) == ("0.5", "30010", "USD")
    assert D(filled["fees"]) > 0
    fill = stack.tail.wait_for(lambda t, d: t.startswith("oms.fills") and d["order_id"] == order["id"],
                               what="the fill on oms.fills")
    assert {k: fill[k] for k in ("client_order_id", "account", "strategy", "symbol", "side", "liquidity",
                                 "fee_currency")} == {
        "client_order_id": "take-1", "account": account, "strategy": "s-fill", "symbol": "XBT/USD", "side": "buy",
        "liquidity": "taker", "fee_currency": "USD"}
    assert (D(fill["qty"]), D(fill["price"]), D(fill["fee"])) == (D("0.5"), D("30010"), D(filled["fees"]))
    assert fill["fill_id"] and fill["ts"]
    fills = stack.api.call("GET", f"/v1/orders/{order['id']}/fills").json()
    assert [f["fill_id"] for f in fills["items"]] == [fill["fill_id"]]
    positions = stack.api.call("GET", f"/v1/accounts/{account}/positions").json()["positions"]
    assert [(p["symbol"], p["qty"], p["avg_price"]) for p in positions] == [("XBT/USD", "0.5", "30010")]
    states = [e["state"] for e in order_events(stack, order["id"])]
    assert states[0] == "pending_new" and states[-1] == "filled"

    def risk_position() -> bool | str:
        resp = httpx.get(f"{stack.risk.url}/v1/accounts/{account}/positions", headers=bearer(stack.admin), timeout=5)
        held = {p["symbol"]: p["qty"] for p in resp.json().get("positions", [])}
        return D(held.get("XBT/USD", "0")) == D("0.5") or f"risk positions {held}"

    wait(risk_position, "risk-service to apply the OMS fill", timeout=40)


def test_positions_follow_the_average_cost_rules(stack: Stack) -> None:
    """The database function that records fills keeps positions exactly as ``positions.apply_fill`` does."""
    from sandbox.services.oms.positions import Position, apply_fill

    account = f"acct-pos-{secrets.token_hex(3)}"
    expected = Position()
    for side, qty, price in (("buy", "0.4", "30010.0"), ("buy", "0.1", "30020.0"), ("sell", "0.7", "29990.0"),
                             ("buy", "0.2", "30010.0")):
        placed = stack.api.placed(account=account, side=side, qty=qty, price=price)
        stack.api.wait_state(placed["id"], "filled")
        for f in stack.api.call("GET", f"/v1/orders/{placed['id']}/fills").json()["items"]:
            fee = D(f["fee"]) if f["fee_currency"] == "USD" else D(0)
            expected = apply_fill(expected, f["side"], D(f["qty"]), D(f["price"]), fee)
    got = stack.api.call("GET", f"/v1/accounts/{account}/positions").json()["positions"]
    assert len(got) == 1
    pos = got[0]
    assert D(pos["qty"]) == expected.qty == 0
    assert D(pos["realized_pnl"]) == expected.realized_pnl
    assert D(pos["fees"]) == expected.fees and D(pos["avg_price"]) == expected.avg_price
    assert (D(pos["bought"]), D(pos["sold"]), pos["fills"]) == (expected.bought, expected.sold, expected.fills)


def test_rejections_carry_stable_codes(stack: Stack) -> None:
    unknown = stack.api.placed(symbol="NOPE/USD")
    assert unknown["state"] == "rejected" and [r["code"] for r in unknown["reasons"]] == ["instrument_unknown"]
    too_small = stack.api.placed(type="market", price=None, qty="0.00001")
    assert too_small["state"] == "rejected"
    assert too_small["reasons"][0]["code"] == "venue_rejected"
    assert "EOrder:Order minimum not met" in too_small["reasons"][0]["message"]
    transitions = stack.api.order(too_small["id"])["transitions"]
    assert [t["to_state"] for t in transitions] == ["pending_new", "rejected"]
    bad = stack.api.place(type="limit", price=None)
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"


# ------------------------------------------------------------------------------------------------ lost answers


@pytest.mark.parametrize(("fault", "final"), [
    ({"action": "drop_after_accept", "mode": "reset"}, "new"),        # accepted, answer lost
    ({"action": "error", "phase": "after", "errors": ["EService:Unavailable"]}, "new"),  # accepted, error answered
    ({"action": "drop", "mode": "reset"}, "rejected"),                # never executed
])
def test_an_addorder_whose_answer_is_lost_is_resolved_never_resent(stack: Stack, fault: dict[str, Any],
                                                                   final: str) -> None:
    rule = stack.venue.admin("POST", "/faults", {**fault, "endpoint": "AddOrder", "count": 1})[0]
    try:
        resp = stack.api.place(price="27000.0")
        assert resp.status_code in (201, 202), resp.text
        order = stack.api.wait_state(resp.json()["id"], final, timeout=25)
    finally:
        stack.venue.admin("DELETE", "/faults")
    assert rule["id"]
    account = stack.venue.account(stack.venue_account["account_id"])
    at_venue = [o for o in account["open"] if o["txid"] == order["txid"]] if order["txid"] else []
    if final == "new":
        assert len(at_venue) == 1, "exactly one order at the venue: AddOrder was not sent twice"
        stack.api.call("DELETE", f"/v1/orders/{order['id']}")
    else:
        assert order["txid"] is None and [r["code"] for r in order["reasons"]] == ["venue_not_received"]


# ------------------------------------------------------------------------------------------------ cancel-all


def test_strategy_and_account_cancel_all(stack: Stack) -> None:
    account = f"acct-ca-{secrets.token_hex(3)}"
    a = stack.api.placed(account=account, strategy="strat-x", price="28100.0")
    b = stack.api.placed(account=account, strategy="strat-x", price="28200.0")
    c = stack.api.placed(account=account, strategy="strat-y", price="28300.0")
    resp = stack.api.call("POST", "/v1/strategies/strat-x/cancel-all", {"reason": "strategy stopped"})
    assert resp.status_code == 200, resp.text
    assert sorted(resp.json()["canceled"]) == sorted([a["id"], b["id"]]) and resp.json()["failed"] == []
    assert stack.api.order(c["id"])["state"] == "new"
    resp = stack.api.call("POST", f"/v1/accounts/{account}/cancel-all")
    assert resp.json()["canceled"] == [c["id"]]
    open_txids = stack.venue.open_txids(stack.venue_account["account_id"])
    assert not {a["txid"], b["txid"], c["txid"]} & open_txids


# ------------------------------------------------------------------------------------------------ kill switch


def test_a_kill_switch_set_in_risk_blocks_orders_and_cancels_open_ones(stack: Stack, make_user: Any) -> None:
    account = f"acct-ks-{secrets.token_hex(3)}"
    resting = stack.api.placed(account=account, price="28500.0")
    assert resting["state"] == "new"
    _, _, officer = make_user("risk-officer")
    resp = httpx.put(f"{stack.risk.url}/v1/accounts/{account}/kill-switch",
                     json={"active": True, "reason": "runaway strategy"}, headers=bearer(officer), timeout=10)
    assert resp.status_code == 200, resp.text
    canceled = stack.api.wait_state(resting["id"], "canceled", timeout=15)
    assert canceled["txid"] not in stack.venue.open_txids(stack.venue_account["account_id"])
    blocked = stack.api.placed(account=account, price="28400.0")
    assert blocked["state"] == "rejected"
    assert "kill_switch_active" in [r["code"] for r in blocked["reasons"]]
    assert stack.api.call("GET", "/v1/status").json()["kill_switches"][account]["reason"] == "runaway strategy"
    # Other accounts trade on.
    other = stack.api.placed(price="28400.0")
    assert other["state"] == "new"
    stack.api.call("DELETE", f"/v1/orders/{other['id']}")
    # Cleared: orders go through again.
    resp = httpx.put(f"{stack.risk.url}/v1/accounts/{account}/kill-switch", json={"active": False, "reason": "ok"},
                     headers=bearer(officer), timeout=10)
    assert resp.status_code == 200, resp.text
    wait(lambda: account not in stack.api.call("GET", "/v1/status").json()["kill_switches"], "the switch to clear")
    again = stack.api.placed(account=account, price="28400.0")
    assert again["state"] == "new", again
    stack.api.call("DELETE", f"/v1/orders/{again['id']}")


# ------------------------------------------------------------------------------------------------ reconciliation


def test_reconciliation_repairs_a_fill_the_oms_missed_while_down(stack: Stack) -> None:
    resting = stack.api.placed(client_order_id=f"rec-{secrets.token_hex(3)}", qty="0.2", price="29500.0")
    assert resting["state"] == "new"
    stack.oms.stop()
    # While the OMS is down a seller hits the resting bid at the venue.
    stack.venue.admin("POST", "/trades", {"pair": "XBTUSD", "price": "29500.0", "qty": "0.2", "side": "sell"})
    assert resting["txid"] not in stack.venue.open_txids(stack.venue_account["account_id"])
    stack.restart_oms()
    order = stack.api.order(resting["id"])  # the start-up reconciliation ran before the OMS was ready
    assert order["state"] == "filled" and order["filled_qty"] == "0.2"
    runs = stack.api.call("GET", "/v1/reconciliations").json()["items"]
    startup = runs[0]
    assert startup["trigger"] == "startup" and startup["status"] == "ok", startup
    mine = [d for d in startup["differences"] if d["order_id"] == resting["id"]]
    assert mine and mine[0]["action"] == "repaired" and "fills:1" in mine[0]["detail"]["changes"]
    fill = stack.tail.wait_for(lambda t, d: t.startswith("oms.fills") and d["order_id"] == resting["id"],
                               what="the repaired fill on oms.fills")
    assert (D(fill["qty"]), D(fill["price"]), fill["liquidity"]) == (D("0.2"), D("29500"), "maker")
    sources = [f["source"] for f in stack.api.call("GET", f"/v1/orders/{resting['id']}/fills").json()["items"]]
    assert sources == ["reconcile"]


def test_a_kill_switch_set_while_the_oms_was_down_holds_at_start_up(stack: Stack, make_user: Any) -> None:
    account = f"acct-down-{secrets.token_hex(3)}"
    resting = stack.api.placed(account=account, price="28600.0")
    stack.oms.stop()
    _, _, officer = make_user("risk-officer")
    resp = httpx.put(f"{stack.risk.url}/v1/accounts/{account}/kill-switch",
                     json={"active": True, "reason": "set while the OMS was down"}, headers=bearer(officer), timeout=10)
    assert resp.status_code == 200, resp.text
    stack.restart_oms()
    # risk's state was read at start-up: blocked at once, and the open order swept
    assert stack.api.call("GET", "/v1/status").json()["kill_switches"][account]["reason"] == "set while the OMS was down"
    blocked = stack.api.placed(account=account, price="28400.0")
    assert "kill_switch_active" in [r["code"] for r in blocked["reasons"]]
    stack.api.wait_state(resting["id"], "canceled", timeout=15)
    httpx.put(f"{stack.risk.url}/v1/accounts/{account}/kill-switch", json={"active": False, "reason": "ok"},
              headers=bearer(officer), timeout=10)


def place_behind_the_oms(stack: Stack, cl_ord_id: str, price: str) -> str:
    """AddOrder with the OMS's key pair, not through the OMS; returns the txid."""
    import asyncio

    key = (stack.creds / "api_key").read_text().strip()
    secret = (stack.creds / "api_secret").read_text().strip()
    client = KrakenClient(stack.venue.url, key, secret)

    async def place() -> str:
        try:
            result = await client.add_order(pair="XBTUSD", side="sell", ordertype="limit", volume=D("0.03"),
                                            price=D(price), cl_ord_id=cl_ord_id)
            return result.txids[0]
        finally:
            await client.aclose()

    return asyncio.run(place())


def adopted_orders(stack: Stack) -> dict[str, dict[str, Any]]:
    items = stack.api.call("GET", "/v1/orders", account="venue", limit=500).json()["items"]
    return {o["txid"]: o for o in items}


def test_the_executions_feed_adopts_an_order_placed_behind_the_oms(stack: Stack) -> None:
    txid = place_behind_the_oms(stack, "manual-live-1", "31500.0")
    wait(lambda: txid in adopted_orders(stack), "the feed to adopt the venue order")
    order = adopted_orders(stack)[txid]
    assert (order["source"], order["state"], order["client_order_id"], order["side"], order["qty"]) == (
        "adopted", "new", "manual-live-1", "sell", "0.03")
    assert stack.api.call("DELETE", f"/v1/orders/{order['id']}").json()["state"] == "canceled"


def test_reconcile_on_demand_adopts_unknown_orders_and_reports_balances(stack: Stack, make_user: Any) -> None:
    stack.oms.stop()
    # While the OMS is down: an order placed at the venue behind its back, and funds added there.
    txid = place_behind_the_oms(stack, "manual-order-1", "31000.0")
    stack.venue.admin("POST", f"/accounts/{stack.venue_account['account_id']}/balances", {"ZUSD": "123.45"})
    stack.restart_oms(OMS_RECONCILE_ON_STARTUP="false")
    assert txid not in adopted_orders(stack)
    _, _, svc = make_user("service")
    resp = stack.api.call("POST", "/v1/reconcile", {"lookback_s": 3600}, token=svc)
    assert resp.status_code == 200, resp.text
    run = resp.json()
    assert run["trigger"] == "manual" and run["status"] == "ok", run
    adopted = [d for d in run["differences"] if d["kind"] == "unknown_venue_order" and d["txid"] == txid]
    assert adopted and adopted[0]["action"] == "adopted", run["differences"]
    order = stack.api.order(adopted[0]["order_id"])
    assert (order["account"], order["source"], order["state"], order["client_order_id"], order["side"]) == (
        "venue", "adopted", "new", "manual-order-1", "sell")
    balance = [d for d in run["differences"] if d["kind"] == "balance_mismatch" and d["asset"] == "ZUSD"]
    assert balance and balance[0]["action"] == "set_to_venue", run["differences"]
    assert D(balance[0]["actual"]) - D(balance[0]["expected"]) == D("123.45")
    # The history lists the run with its differences; a second run finds nothing new.
    history = stack.api.call("GET", "/v1/reconciliations", limit=1).json()["items"][0]
    assert history["id"] == run["id"] and len(history["differences"]) == len(run["differences"])
    again = stack.api.call("POST", "/v1/reconcile").json()
    assert again["status"] == "ok" and again["differences"] == [], again
    assert stack.api.call("DELETE", f"/v1/orders/{order['id']}").json()["state"] == "canceled"


def test_metrics_and_health(stack: Stack) -> None:
    health = httpx.get(f"{stack.oms.url}/healthz", timeout=5).json()
    assert health["status"] == "ok" and {"database", "redis", "nats", "kafka"} <= set(health["checks"])
    text = httpx.get(f"{stack.oms.url}/metrics", timeout=5).text
    assert "oms_executions_feed_connected" in text and "http_requests_total" in text


def test_nothing_failed_unexpectedly_in_the_oms_logs(stack: Stack) -> None:
    import json

    problems = []
    for line in stack.oms.log_tail(100_000):
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if doc.get("level") in ("error", "critical") or "Traceback" in str(doc.get("exc_info", "")):
            problems.append(line)
    assert problems == []
