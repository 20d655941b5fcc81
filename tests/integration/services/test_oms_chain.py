"""oms-service with the whole pre-trade chain: policy-service (fed by universe- and secrets-service), risk-service,
fees-service and capital-allocator, all real subprocesses, trading on the real venue.

Covers: an allowed order asked of every service (fee estimate recorded, strategy capital reserved), each service's
violations passed through with its stable code, capital released on cancel and consumed on fill.
"""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from test_oms_support import OmsApi, VenueProcess, bearer, oms_env, wait

pytestmark = pytest.mark.integration

D = Decimal
TRADER_ACCOUNT = "acct-chain"
CAPITAL_ACCOUNT = "acct-cap"


@dataclass
class Chain:
    venue: VenueProcess
    policy: Any
    risk: Any
    fees: Any
    capital: Any
    oms: Any
    api: OmsApi
    admin: str

    def reservation(self, strategy: str, order_id: str) -> dict[str, Any]:
        resp = httpx.get(f"{self.capital.url}/v1/strategies/{strategy}/reservations/{order_id}",
                         headers=bearer(self.admin), timeout=10)
        assert resp.status_code == 200, resp.text
        return resp.json()


def env_for(auth: Any, redis_url: str, name: str, client_id: str) -> dict[str, str]:
    return {"AETHER_SERVICE_NAME": name, "AETHER_AUTH_URL": auth.url, "AETHER_SESSION_REDIS_URL": redis_url,
            "AETHER_SERVICE_CLIENT_ID": client_id, "AETHER_SERVICE_CLIENT_SECRET": auth.service_accounts[client_id]}


def ok(resp: httpx.Response, *statuses: int) -> Any:
    assert resp.status_code in (statuses or (200,)), f"{resp.request.method} {resp.request.url}: {resp.text}"
    return resp.json() if resp.content else None


@pytest.fixture(scope="module")
def chain(
    start_service_shared: Callable[[str, dict[str, str]], Any], auth_service: Any, postgres: Any, redis_server: Any,
    nats_server: Any, kafka_broker: Any, service_log_dir: Path, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Chain]:
    tag = secrets.token_hex(4)
    admin = ok(httpx.post(f"{auth_service.url}/v1/login",
                          json={"username": "admin", "password": auth_service.admin_password}, timeout=10))[
        "access_token"]
    topics = (f"oms.orders.ch{tag}", f"oms.fills.ch{tag}")
    kafka_broker.create_topics(list(topics), partitions=1)
    venue = VenueProcess(service_log_dir).start()
    try:
        creds = tmp_path_factory.mktemp("oms-chain-kraken")
        venue.create_account(creds)
        venue.set_book("XBTUSD", bids=[["29990.0", "5"]], asks=[["30010.0", "5"]])
        for db in ("universe", "secrets", "policy", "fees", "capital", "rc", "rd", "re"):
            postgres.create_database(f"{db}_ch{tag}")
        redis = redis_server.url
        universe = start_service_shared("universe", {
            **env_for(auth_service, redis, "universe-service", "universe-service"),
            "UNIVERSE_DATABASE_URL": postgres.dsn(f"universe_ch{tag}"), "UNIVERSE_VENUE_URL": venue.url})
        ok(httpx.post(f"{universe.url}/v1/instruments/{quote('XBT/USD', safe='')}/approve",
                      json={"reason": "oms chain test"}, headers=bearer(admin), timeout=10))
        secrets_svc = start_service_shared("secrets", {
            **env_for(auth_service, redis, "secrets-service", "secrets-service"),
            "SECRETS_DATABASE_URL": postgres.dsn(f"secrets_ch{tag}"),
            "SECRETS_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()})
        for account in (TRADER_ACCOUNT, CAPITAL_ACCOUNT):
            ok(httpx.post(f"{secrets_svc.url}/v1/accounts/{account}/kraken-keys", headers=bearer(admin), json={
                "label": "chain", "api_key": base64.b64encode(os.urandom(42)).decode(),
                "private_key": base64.b64encode(os.urandom(64)).decode(), "permissions": ["query_funds", "trade"]},
                timeout=10), 201)
        policy = start_service_shared("policy", {
            **env_for(auth_service, redis, "policy-service", "test-client"),
            "POLICY_DATABASE_URL": postgres.dsn(f"policy_ch{tag}"), "POLICY_UNIVERSE_URL": universe.url,
            "POLICY_SECRETS_URL": secrets_svc.url, "POLICY_VENUE_URL": venue.url})
        risk = start_service_shared("risk", {
            **env_for(auth_service, redis, "risk-service", "test-client"),
            "RISK_COMPLIANCE_DATABASE_URL": postgres.dsn(f"rc_ch{tag}"),
            "RISK_DIVERSIFICATION_DATABASE_URL": postgres.dsn(f"rd_ch{tag}"),
            "RISK_ESG_DATABASE_URL": postgres.dsn(f"re_ch{tag}"), "RISK_NATS_URL": nats_server.url})
        fees = start_service_shared("fees", {
            **env_for(auth_service, redis, "fees-service", "fees-service"),
            "FEES_DATABASE_URL": postgres.dsn(f"fees_ch{tag}"), "FEES_UNIVERSE_URL": universe.url})
        capital = start_service_shared("capital_allocator", {
            **env_for(auth_service, redis, "capital-allocator", "test-client"),
            "CAPITAL_ALLOCATOR_DB_URL": postgres.dsn(f"capital_ch{tag}")})
        ok(httpx.put(f"{capital.url}/v1/portfolio", json={"nav": "100000"}, headers=bearer(admin), timeout=10))
        for strategy in ("s-chain", "s-small"):
            ok(httpx.put(f"{capital.url}/v1/strategies/{strategy}/target",
                         json={"weight": "1", "max_capital": "50000" if strategy == "s-chain" else "100"},
                         headers=bearer(admin), timeout=10), 200, 201)
            ok(httpx.post(f"{capital.url}/v1/strategies/{strategy}/allocate", headers=bearer(admin), timeout=10))
        env = oms_env(postgres=postgres, redis_server=redis_server, kafka_broker=kafka_broker, nats_server=nats_server,
                      venue=venue, credentials_dir=creds, database=f"oms_ch{tag}", topics=topics, auth=auth_service,
                      OMS_POLICY_URL=policy.url, OMS_RISK_URL=risk.url, OMS_FEES_URL=fees.url,
                      OMS_CAPITAL_ALLOCATOR_URL=capital.url)
        oms = start_service_shared("oms", env)
        yield Chain(venue, policy, risk, fees, capital, oms, OmsApi(oms.url, admin), admin)
    finally:
        venue.stop()


def order(chain: Chain, **body: Any) -> dict[str, Any]:
    return chain.api.placed(**{"account": TRADER_ACCOUNT, "qty": "0.01", "price": "29000.0", **body})


def codes(doc: dict[str, Any]) -> list[tuple[str, str]]:
    return [(r["source"], r["code"]) for r in doc["reasons"]]


def test_an_allowed_order_asks_every_service_and_reserves_capital(chain: Chain) -> None:
    placed = order(chain, strategy="s-chain")
    assert placed["state"] == "new" and placed["reasons"] == [], placed
    # fees-service priced it: 0.01 x 29000 = 290 USD at the 0.26 % taker tier
    assert D(placed["estimated_fee"]) == D("0.754")
    assert D(placed["capital_reserved"]) == D("290.754")
    reservation = chain.reservation("s-chain", placed["id"])
    assert reservation["status"] == "open" and D(reservation["amount"]) == D("290.754")
    assert reservation["account"] == TRADER_ACCOUNT
    # cancelled: the reservation is released
    assert chain.api.call("DELETE", f"/v1/orders/{placed['id']}").json()["state"] == "canceled"
    wait(lambda: chain.reservation("s-chain", placed["id"])["status"] == "released", "the reservation release")


def test_a_fill_consumes_the_reservation(chain: Chain) -> None:
    placed = order(chain, strategy="s-chain", qty="0.02", price="30010.0")
    filled = chain.api.wait_state(placed["id"], "filled")
    assert D(filled["filled_qty"]) == D("0.02")

    def consumed() -> bool | str:
        res = chain.reservation("s-chain", placed["id"])
        return res["status"] == "consumed" or f"reservation {res['status']}"

    wait(consumed, "the reservation to be consumed")
    res = chain.reservation("s-chain", placed["id"])
    assert D(res["consumed"]) == D(filled["avg_price"]) * D("0.02") + D(filled["fees"])


def test_policy_violations_pass_through_with_their_codes(chain: Chain) -> None:
    too_small = order(chain, qty="0.00001")
    assert too_small["state"] == "rejected"
    assert ("policy", "qty_below_ordermin") in codes(too_small)
    off_tick = order(chain, price="29000.05")
    assert ("policy", "price_off_tick") in codes(off_tick) or ("policy", "price_too_many_decimals") in codes(off_tick)
    no_key = order(chain, account="acct-without-key")
    assert ("policy", "api_key_no_trade_permission") in codes(no_key)
    # rejected orders never reach the venue
    assert not {too_small["txid"], off_tick["txid"], no_key["txid"]} - {None}


def test_risk_violations_pass_through_with_their_codes(chain: Chain, make_user: Any) -> None:
    _, _, officer = make_user("risk-officer")
    ok(httpx.post(f"{chain.risk.url}/v1/compliance/restricted", headers=bearer(officer), timeout=10, json={
        "kind": "symbol", "value": "XBT/USD", "account": TRADER_ACCOUNT, "reason": "oms chain test"}), 201)
    wait(lambda: ("risk", "restricted_symbol") in codes(order(chain)), "the restriction to apply")
    restricted = order(chain)
    assert restricted["state"] == "rejected" and ("risk", "restricted_symbol") in codes(restricted)
    detail = chain.api.order(restricted["id"])
    assert [t["to_state"] for t in detail["transitions"]] == ["pending_new", "rejected"]
    assert "restricted_symbol" in detail["transitions"][-1]["detail"]["codes"]


def test_capital_refusals_reject_the_order(chain: Chain) -> None:
    big = order(chain, account=CAPITAL_ACCOUNT, strategy="s-small", qty="0.01", price="29000.0")
    assert big["state"] == "rejected", big
    assert codes(big) == [("capital", "insufficient_capital")]
    unknown = order(chain, account=CAPITAL_ACCOUNT, strategy="no-such-strategy")
    assert unknown["state"] == "rejected" and codes(unknown)[0][0] == "capital"
