"""policy-service over HTTP: a real subprocess on embedded PostgreSQL, fed by the real universe-service
(syncing from the venue simulator's public REST API serving ``fixtures/kraken/assetpairs.json``) and the
real secrets-service, with tokens from the real auth-service.

Covers every violation code end to end (venue status from the fixture, approvals from universe-service,
key permissions from secrets-service, account rules), several violations at once, exact decimals from
JSON numbers, reference data refreshed by polling and on demand, rules CRUD with If-Match and the
append-only audit trail, two replicas keeping their rules coherent, the venue-wide SystemStatus, roles,
revoked tokens, the steady-state check path calling no other service, and metrics.
"""

from __future__ import annotations

import base64
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import psycopg
import pytest

from sandbox.infra.ports import free_port
from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "fixtures" / "kraken" / "assetpairs.json"
APPROVED = ["XBT/USD", "ETH/USD", "SOL/USD", "XRP/USD", "ADA/EUR"]  # ETH/XBT stays pending
#: The service account policy-service uses in tests (the session auth-service registers no policy-service account).
POLICY_CLIENT = "test-client"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# ------------------------------------------------------------------------------------------- venue


@dataclass
class Venue:
    """``python -m sandbox.venue`` on a loopback port (stopped by PID)."""

    port: int
    log_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, system_status: str = "online") -> Venue:
        fd, name = tempfile.mkstemp(prefix="venue-", suffix=".log", dir=self.log_dir)
        os.close(fd)
        env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
        with open(name, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "sandbox.venue", "--assetpairs", str(FIXTURE), "--port", str(self.port),
                 "--system-status", system_status, "--session", ""],
                cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        proc = self.process

        def ready() -> bool | str:
            if proc.poll() is not None:
                raise RuntimeError(f"venue exited with {proc.returncode}: {Path(name).read_text()[-2000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.TransportError as exc:
                return str(exc)

        try:
            wait_until(ready, timeout=60, interval=0.05, what="venue /healthz")
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


# ------------------------------------------------------------------------------------------- stack


def common_env(auth: Any, redis_url: str, client_id: str, name: str) -> dict[str, str]:
    return {
        "AETHER_SERVICE_NAME": name,
        "AETHER_AUTH_URL": auth.url,
        "AETHER_SESSION_REDIS_URL": redis_url,
        "AETHER_SERVICE_CLIENT_ID": client_id,
        "AETHER_SERVICE_CLIENT_SECRET": auth.service_accounts[client_id],
    }


def admin_login(auth: Any) -> str:
    resp = httpx.post(f"{auth.url}/v1/login", json={"username": "admin", "password": auth.admin_password}, timeout=10)
    resp.raise_for_status()
    return resp.json()["access_token"]


def policy_env(stack: Stack, dsn: str, **extra: str) -> dict[str, str]:
    return {
        **common_env(stack.auth, stack.redis_url, POLICY_CLIENT, "policy-service"),
        "POLICY_DATABASE_URL": dsn,
        "POLICY_UNIVERSE_URL": stack.universe.url,
        "POLICY_SECRETS_URL": stack.secrets.url,
        "POLICY_VENUE_URL": stack.venue.url,
        "KRAKEN_CREDENTIALS_DIR": str(stack.creds_dir),
        **extra,
    }


@dataclass
class Stack:
    auth: Any
    redis_url: str
    venue: Venue
    universe: Any
    secrets: Any
    policy: Any  # replica A: short TTLs, fast polls
    policy_b: Any  # replica B: same database, long TTLs (steady state)
    policy_dsn: str
    creds_dir: Path
    admin: str

    def check(self, token: str | None = None, url: str | None = None, **body: Any) -> httpx.Response:
        doc = {"account": "acct-trade", "symbol": "XBT/USD", "side": "buy", "type": "limit", "qty": "0.01",
               "price": "50000.1", **body}
        doc = {k: v for k, v in doc.items() if v is not None}
        return httpx.post(f"{url or self.policy.url}/v1/check-order", json=doc,
                          headers=bearer(token or self.admin), timeout=10)

    def codes(self, url: str | None = None, **body: Any) -> list[str]:
        resp = self.check(url=url, **body)
        assert resp.status_code == 200, resp.text
        return [v["code"] for v in resp.json()["violations"]]

    def codes_b(self, **body: Any) -> list[str]:
        return self.codes(url=self.policy_b.url, **body)

    def rules(self, method: str, account: str, token: str | None = None, url: str | None = None,
              **kwargs: Any) -> httpx.Response:
        headers = {**bearer(token or self.admin), **kwargs.pop("headers", {})}
        return httpx.request(method, f"{url or self.policy.url}/v1/accounts/{account}/rules", headers=headers,
                             timeout=10, **kwargs)

    def refresh(self, url: str | None = None, **params: str) -> httpx.Response:
        return httpx.post(f"{url or self.policy.url}/v1/refresh", params=params, headers=bearer(self.admin),
                          timeout=10)

    def add_key(self, account: str, permissions: list[str]) -> str:
        body = {"label": f"k{secrets.token_hex(3)}", "api_key": base64.b64encode(os.urandom(42)).decode(),
                "private_key": base64.b64encode(os.urandom(64)).decode(), "permissions": permissions}
        resp = httpx.post(f"{self.secrets.url}/v1/accounts/{account}/kraken-keys", json=body,
                          headers=bearer(self.admin), timeout=10)
        assert resp.status_code == 201, resp.text
        return resp.json()["key_id"]


def metric(url: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in httpx.get(f"{url}/metrics", timeout=5).text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture(scope="module")
def stack(
    start_service_shared: Callable[[str, dict[str, str]], Any], auth_service: Any, postgres: Any, redis_server: Any,
    service_log_dir: Path, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """venue + universe-service (synced, five instruments approved) + secrets-service (keys) + two policy replicas."""
    venue = Venue(free_port(), service_log_dir).start()
    try:
        admin = admin_login(auth_service)
        tag = secrets.token_hex(4)
        for db in (f"universe_p{tag}", f"secrets_p{tag}", f"policy_p{tag}"):
            postgres.create_database(db)
        universe = start_service_shared("universe", {
            **common_env(auth_service, redis_server.url, "universe-service", "universe-service"),
            "UNIVERSE_DATABASE_URL": postgres.dsn(f"universe_p{tag}"), "UNIVERSE_VENUE_URL": venue.url,
            "UNIVERSE_CACHE_POLL_S": "0.5",
        })
        for symbol in APPROVED:
            resp = httpx.post(f"{universe.url}/v1/instruments/{quote(symbol, safe='')}/approve",
                              json={"reason": "policy integration test"}, headers=bearer(admin), timeout=10)
            assert resp.status_code == 200, resp.text
        secrets_svc = start_service_shared("secrets", {
            **common_env(auth_service, redis_server.url, "secrets-service", "secrets-service"),
            "SECRETS_DATABASE_URL": postgres.dsn(f"secrets_p{tag}"),
            "SECRETS_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
        })
        creds = tmp_path_factory.mktemp("kraken-creds")
        (creds / "api_key").write_text("POLICY-TEST-API-KEY-do-not-log\n")
        (creds / "api_secret").write_text(base64.b64encode(b"policy-test-secret-do-not-log").decode())
        stack = Stack(auth_service, redis_server.url, venue, universe, secrets_svc, None, None,
                      postgres.dsn(f"policy_p{tag}"), creds, admin)
        stack.add_key("acct-trade", ["query_funds", "trade"])
        stack.add_key("acct-view", ["query_funds", "query_open_orders"])
        stack.policy = start_service_shared("policy", policy_env(
            stack, stack.policy_dsn, POLICY_UNIVERSE_POLL_S="0.5", POLICY_VENUE_POLL_S="0.5",
            POLICY_PERMISSIONS_TTL_S="1", POLICY_RULES_POLL_S="0.5"))
        stack.policy_b = start_service_shared("policy", policy_env(
            stack, stack.policy_dsn, POLICY_UNIVERSE_POLL_S="600", POLICY_VENUE_POLL_S="600",
            POLICY_PERMISSIONS_TTL_S="600", POLICY_RULES_POLL_S="600"))
        yield stack
    finally:
        venue.stop()


# ------------------------------------------------------------------------------------------- tests


def test_an_allowed_order(stack: Stack, make_user: Any) -> None:
    _, _, trader = make_user("trader")
    resp = stack.check(trader, strategy="mm-1", client_order_id="c-1")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert doc["allowed"] is True and doc["violations"] == []
    assert doc["instrument"] == {
        "symbol": "XBT/USD", "altname": "XBTUSD", "pair_key": "XXBTZUSD", "base": "XBT", "quote": "USD",
        "status": "online", "listed": True, "approval": "approved", "ordermin": "0.0001", "costmin": "0.5",
        "tick_size": "0.1", "pair_decimals": 1, "lot_decimals": 8,
    }
    assert (doc["notional"], doc["price_source"], doc["venue_status"]) == ("500.001", "limit_price", "online")
    assert (doc["strategy"], doc["client_order_id"], doc["rules_version"], doc["unchecked"]) == ("mm-1", "c-1", None, [])
    assert doc["checked_at"].endswith("+00:00")
    for spelling in ("XBTUSD", "xxbtzusd", "BTC/USD", "btc-usd"):  # every spelling resolves
        assert stack.codes(symbol=spelling) == [], spelling


def test_every_venue_violation_from_real_reference_data(stack: Stack) -> None:
    assert stack.codes(symbol="DOGE/USD") == ["instrument_unknown"]
    assert stack.codes(symbol="ETH/XBT", qty="0.01", price="0.05") == ["instrument_not_approved"]
    assert stack.codes(symbol="XRP/USD", qty="10", price="0.5") == ["venue_post_only"]  # post_only pair
    assert stack.codes(symbol="XRP/USD", qty="10", price="0.5", post_only=True) == []
    assert stack.codes(symbol="ADA/EUR", qty="10", price="0.5") == ["venue_cancel_only"]  # cancel_only pair
    assert stack.codes(qty="0.00009", price="60000") == ["qty_below_ordermin"]
    assert stack.codes(qty="0.0001", price="4000") == ["cost_below_costmin"]
    assert stack.codes(type="market", price=None, qty="0.0001", reference_price="4000") == ["cost_below_costmin"]
    assert stack.codes(price="50000.15") == ["price_too_many_decimals", "price_off_tick"]
    assert stack.codes(symbol="SOL/USD", qty="1", price="150.005") == ["price_too_many_decimals", "price_off_tick"]
    assert stack.codes(qty="0.123456789") == ["qty_too_many_decimals"]


def test_several_violations_at_once_with_details(stack: Stack) -> None:
    resp = stack.check(account="acct-view", symbol="ETH/XBT", qty="0.0000123456789", price="0.0000012")
    doc = resp.json()
    assert doc["allowed"] is False
    assert [v["code"] for v in doc["violations"]] == [
        "instrument_not_approved", "qty_below_ordermin", "qty_too_many_decimals", "price_too_many_decimals",
        "price_off_tick", "cost_below_costmin", "api_key_no_trade_permission",
    ]
    by_code = {v["code"]: v for v in doc["violations"]}
    assert by_code["qty_below_ordermin"] == {
        "code": "qty_below_ordermin", "message": "qty 0.0000123456789 is below the order minimum 0.002 ETH",
        "field": "qty", "limit": "0.002", "actual": "0.0000123456789",
    }
    assert (by_code["qty_too_many_decimals"]["limit"], by_code["qty_too_many_decimals"]["actual"]) == ("8", "13")
    assert by_code["price_off_tick"]["limit"] == "0.00001"
    assert by_code["api_key_no_trade_permission"]["actual"] == "query_funds,query_open_orders"
    assert by_code["instrument_not_approved"]["actual"] == "pending"


def test_json_numbers_keep_their_exact_decimals(stack: Stack) -> None:
    raw = ('{"account": "acct-trade", "symbol": "XBT/USD", "side": "sell", "type": "limit", '
           '"qty": 0.123456789012345678, "price": 50000.1}')
    resp = httpx.post(f"{stack.policy.url}/v1/check-order", content=raw, timeout=10,
                      headers={**bearer(stack.admin), "Content-Type": "application/json"})
    assert resp.status_code == 200, resp.text
    (violation,) = resp.json()["violations"]
    assert (violation["code"], violation["actual"]) == ("qty_too_many_decimals", "18")
    assert resp.json()["notional"] == "6172.8517962961851345678"  # exact product, no float on the way


def test_key_permissions_come_from_secrets(stack: Stack) -> None:
    assert stack.codes(account="acct-view") == ["api_key_no_trade_permission"]
    resp = stack.check(account="acct-nokeys")
    assert resp.json()["violations"][0]["message"] == "account 'acct-nokeys' has no API key"
    # a key with trade is added: on demand (refresh of one account) the next check sees it
    stack.add_key("acct-nokeys", ["trade"])
    assert stack.refresh(account="acct-nokeys").json()["permissions_dropped"] == 1
    assert stack.codes(account="acct-nokeys") == []
    # and a permission removed in secrets is seen after the short TTL without any refresh call
    key_id = stack.add_key("acct-ttl", ["trade"])
    assert stack.codes(account="acct-ttl") == []
    patched = httpx.patch(f"{stack.secrets.url}/v1/accounts/acct-ttl/kraken-keys/{key_id}",
                          json={"permissions": ["query_funds"]}, headers=bearer(stack.admin), timeout=10)
    assert patched.status_code == 200, patched.text
    wait_until(lambda: stack.codes(account="acct-ttl") == ["api_key_no_trade_permission"], timeout=10,
               interval=0.2, what="permissions TTL")


def test_universe_changes_are_polled_and_refreshable(stack: Stack) -> None:
    def decide(symbol: str, action: str) -> None:
        resp = httpx.post(f"{stack.universe.url}/v1/instruments/{quote(symbol, safe='')}/{action}",
                          json={"reason": "policy test decision"}, headers=bearer(stack.admin), timeout=10)
        assert resp.status_code == 200, resp.text

    decide("SOL/USD", "exclude")
    try:
        # replica B polls rarely: an on-demand refresh picks the exclusion up at once
        refreshed = stack.refresh(url=stack.policy_b.url)
        assert refreshed.status_code == 200, refreshed.text
        assert refreshed.json()["instruments_changed"] is True and refreshed.json()["instruments"] == 6
        resp = stack.check(url=stack.policy_b.url, symbol="SOL/USD", qty="1", price="150")
        assert [v["code"] for v in resp.json()["violations"]] == ["instrument_not_approved"]
        assert "policy test decision" in resp.json()["violations"][0]["message"]
        # replica A polls every 0.5 s: it sees the exclusion by itself
        wait_until(lambda: stack.codes(symbol="SOL/USD", qty="1", price="150") == ["instrument_not_approved"],
                   timeout=10, interval=0.2, what="universe poll")
    finally:
        decide("SOL/USD", "approve")
    wait_until(lambda: stack.codes(symbol="SOL/USD", qty="1", price="150") == [], timeout=10, interval=0.2,
               what="universe poll (approve)")
    assert stack.refresh(url=stack.policy_b.url).status_code == 200


def test_rules_crud_audit_and_their_effect(stack: Stack, make_user: Any) -> None:
    account = "acct-trade"
    _, _, risk = make_user("risk-officer")
    _, _, viewer = make_user("viewer")
    _, _, trader = make_user("trader")
    assert stack.rules("GET", account).status_code == 404
    assert stack.rules("GET", account).json()["error"] == "rules_not_found"
    body = {"allowed_symbols": ["btc-usd", "ETH/USD", "NEW/COIN"], "max_order_notional": {"usd": "1000"},
            "reason": "desk limits"}
    assert stack.rules("PUT", account, trader, json=body).status_code == 403
    created = stack.rules("PUT", account, risk, json=body)
    assert created.status_code == 201, created.text
    doc = created.json()
    assert doc["allowed_symbols"] == ["XBT/USD", "ETH/USD", "NEW/COIN"]  # known names stored as wsnames
    assert doc["max_order_notional"] == {"USD": "1000"}
    assert (doc["version"], created.headers["etag"]) == (1, '"1"')
    assert stack.rules("GET", account, viewer).json() == doc
    assert stack.rules("GET", account, trader).status_code == 200

    # the rules take effect at once on this replica
    assert stack.codes() == []
    assert stack.codes(qty="0.1") == ["notional_above_max"]
    resp = stack.check(qty="0.1")
    assert {k: resp.json()["violations"][0][k] for k in ("limit", "actual")} == {"limit": "1000", "actual": "5000.01"}
    assert resp.json()["rules_version"] == 1
    assert stack.codes(symbol="SOL/USD", qty="1", price="150") == ["symbol_not_allowed_for_account"]
    assert stack.codes(type="market", price=None) == ["reference_price_required"]
    assert stack.codes(type="market", price=None, reference_price="100001") == ["notional_above_max"]
    # ... and on the other replica (NOTIFY), without waiting for its 10-minute poll
    wait_until(lambda: stack.codes_b(qty="0.1") == ["notional_above_max"], timeout=10, interval=0.1,
               what="replica B sees the rules")

    # conditional replace
    stale = stack.rules("PUT", account, risk, json={"allowed_symbols": None}, headers={"If-Match": '"7"'})
    assert stale.status_code == 412 and stale.json()["error"] == "version_mismatch"
    assert stale.json()["detail"] == {"current_version": 1}
    bad = stack.rules("PUT", account, risk, json={}, headers={"If-Match": "v-one"})
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_if_match"
    replaced = stack.rules("PUT", account, json={"allowed_symbols": ["XBT/USD", "SOL/USD"]}, headers={"If-Match": "1"})
    assert replaced.status_code == 200 and replaced.json()["version"] == 2
    assert replaced.json()["max_order_notional"] is None and replaced.json()["updated_by"] == "admin"
    assert stack.codes(qty="0.1") == []
    assert stack.codes(symbol="SOL/USD", qty="1", price="150") == []
    assert stack.codes(symbol="ETH/USD", qty="1", price="2000") == ["symbol_not_allowed_for_account"]
    listed = httpx.get(f"{stack.policy.url}/v1/rules", headers=bearer(viewer), timeout=10).json()
    assert [r["account"] for r in listed["items"]] == [account] and listed["total"] == 1

    # delete (audited, with a reason); the account is unrestricted again
    assert stack.rules("DELETE", account, trader).status_code == 403
    gone = stack.rules("DELETE", account, risk, params={"reason": "desk closed"}, headers={"If-Match": "2"})
    assert gone.status_code == 204
    assert stack.rules("DELETE", account, risk).status_code == 404
    assert stack.codes(symbol="ETH/USD", qty="1", price="2000") == []
    wait_until(lambda: stack.codes_b(symbol="ETH/USD", qty="1", price="2000") == [], timeout=10, interval=0.1,
               what="replica B sees the deletion")

    # a new creation continues the version sequence
    again = stack.rules("PUT", account, json={"max_order_notional": {"EUR": "5"}})
    assert again.status_code == 201 and again.json()["version"] == 4

    audit = httpx.get(f"{stack.policy.url}/v1/accounts/{account}/rules/audit", headers=bearer(viewer), timeout=10)
    assert audit.status_code == 200, audit.text
    items = audit.json()["items"]
    assert [(e["action"], e["version"]) for e in items] == [("created", 4), ("deleted", 3), ("replaced", 2),
                                                            ("created", 1)]
    assert [e["actor"] for e in items] == ["admin", items[1]["actor"], "admin", items[3]["actor"]]
    assert items[1]["actor"] == items[3]["actor"] != "admin"  # the risk officer
    assert items[1]["reason"] == "desk closed" and items[3]["reason"] == "desk limits"
    assert items[3]["before"] is None
    assert items[3]["after"] == {"allowed_symbols": ["XBT/USD", "ETH/USD", "NEW/COIN"],
                                 "max_order_notional": {"USD": "1000"}}
    assert items[2]["before"] == items[3]["after"] and items[1]["after"] is None
    assert all(e["request_id"] for e in items)
    page = httpx.get(f"{stack.policy.url}/v1/accounts/{account}/rules/audit", params={"limit": 2, "before": 9**9},
                     headers=bearer(viewer), timeout=10).json()
    assert len(page["items"]) == 2 and page["next_before"] == items[1]["id"]
    assert httpx.get(f"{stack.policy.url}/v1/accounts/{account}/rules/audit", headers=bearer(trader),
                     timeout=10).status_code == 403

    # the trail is append-only in the database, whatever the client
    with psycopg.connect(stack.policy_dsn, autocommit=True) as conn:
        for sql in ("UPDATE rules_audit SET actor = 'x'", "DELETE FROM rules_audit", "TRUNCATE rules_audit"):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(sql)
    assert stack.rules("DELETE", account).status_code == 204


def test_bad_rules_input_is_4xx_without_a_write(stack: Stack) -> None:
    for body in ({"allowed_symbols": "XBT/USD"}, {"max_order_notional": {"USD": "-1"}}, {"max_order_notional": {"USD": "1e400"}},
                 {"unknown": 1}, {"reason": "x"}, [1, 2]):
        resp = stack.rules("PUT", "acct-bad", json=body)
        assert resp.status_code == 422, (body, resp.text)
    assert stack.rules("PUT", "bad account!", json={}).status_code == 422
    for raw in (b"{not json", b'{"max_order_notional": {"USD": 1e400}}', b'{"max_order_notional": {"USD": NaN}}'):
        resp = stack.rules("PUT", "acct-bad", content=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 422, (raw, resp.text)
    assert stack.rules("GET", "acct-bad").status_code == 404
    audit = httpx.get(f"{stack.policy.url}/v1/accounts/acct-bad/rules/audit", headers=bearer(stack.admin), timeout=10)
    assert audit.json()["items"] == []


def test_malformed_orders_are_422(stack: Stack) -> None:
    for change in ({"type": "limit", "price": None}, {"type": "market"}, {"qty": "0"}, {"qty": "1e16"},
                   {"qty": "NaN"}, {"side": "hold"}, {"extra": True}, {"post_only": "yes"},
                   {"type": "market", "price": None, "post_only": True}, {"account": "a b"}):
        resp = stack.check(**change)
        assert resp.status_code == 422, (change, resp.text)
        assert resp.json()["error"] == "validation_error"
    raw = httpx.post(f"{stack.policy.url}/v1/check-order", content=b'{"qty": 1e999999999}', timeout=10,
                     headers={**bearer(stack.admin), "Content-Type": "application/json"})
    assert raw.status_code == 422


def test_roles_and_revoked_tokens(stack: Stack, make_user: Any, service_token: Any) -> None:
    _, _, trader = make_user("trader")
    _, _, viewer = make_user("viewer")
    _, _, risk = make_user("risk-officer")
    svc = service_token("test-client")
    for token in (trader, risk, svc, stack.admin):
        assert stack.check(token).status_code == 200
    denied = stack.check(viewer)
    assert denied.status_code == 403 and denied.json()["error"] == "forbidden"
    assert httpx.post(f"{stack.policy.url}/v1/check-order", json={}, timeout=10).status_code == 401
    forged = stack.check("eyJhbGciOiJFZERTQSJ9.e30.AAAA")
    assert forged.status_code == 401 and forged.headers["www-authenticate"] == "Bearer"
    assert httpx.post(f"{stack.policy.url}/v1/refresh", headers=bearer(trader), timeout=10).status_code == 403
    assert httpx.post(f"{stack.policy.url}/v1/refresh", headers=bearer(svc), timeout=10).status_code == 200
    assert httpx.get(f"{stack.policy.url}/v1/reference", headers=bearer(trader), timeout=10).status_code == 403
    # logout revokes the session: the very next request is refused
    assert httpx.post(f"{stack.auth.url}/v1/logout", headers=bearer(trader), timeout=5).status_code == 204
    revoked = stack.check(trader)
    assert revoked.status_code == 401 and revoked.json()["error"] == "unauthorized"
    # open endpoints
    assert httpx.get(f"{stack.policy.url}/healthz", timeout=5).json()["checks"]["instrument_cache"] == "ok"
    assert httpx.get(f"{stack.policy.url}/metrics", timeout=5).status_code == 200


def test_reference_state_and_credentials_never_leak(stack: Stack) -> None:
    resp = httpx.get(f"{stack.policy.url}/v1/reference", headers=bearer(stack.admin), timeout=10)
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["instruments"], doc["instruments_error"], doc["venue_status"]) == (6, None, "online")
    assert doc["kraken_credentials"] == "loaded" and doc["instruments_skipped"] == []
    for svc in (stack.policy, stack.policy_b):
        log = svc.log_path.read_text()
        assert "POLICY-TEST-API-KEY" not in log and "policy-test-secret" not in log
        assert base64.b64encode(b"policy-test-secret-do-not-log").decode() not in log
        assert '"kraken_credentials": "loaded"' in log


def test_steady_state_checks_call_no_other_service(stack: Stack) -> None:
    url = stack.policy_b.url
    route = "/v1/accounts/{account}/permissions"
    for account in ("acct-trade", "acct-view"):  # first sight of each account: one call each
        assert stack.check(url=url, account=account).status_code == 200
    refreshes_before = metric(url, "policy_reference_refreshes_total")
    fetches_before = sum(metric(url, "policy_permissions_lookups_total", result=r) for r in ("miss", "stale"))
    secrets_before = metric(stack.secrets.url, "http_requests_total", route=route)
    with httpx.Client(base_url=url, headers=bearer(stack.admin), timeout=10) as client:
        for i in range(200):
            body = {"account": ("acct-trade", "acct-view")[i % 2], "symbol": "XBT/USD", "side": "buy",
                    "type": "limit", "qty": "0.01", "price": "50000.1"}
            assert client.post("/v1/check-order", json=body).status_code == 200
    # replica B (10-minute polls and TTL) made no upstream call for any of the 200 checks
    assert metric(url, "policy_reference_refreshes_total") == refreshes_before
    assert sum(metric(url, "policy_permissions_lookups_total", result=r) for r in ("miss", "stale")) == fetches_before
    assert metric(stack.secrets.url, "http_requests_total", route=route) == secrets_before
    assert metric(url, "policy_checks_total", outcome="allowed") >= 100
    assert metric(url, "policy_checks_total", outcome="refused") >= 100
    assert metric(url, "policy_violations_total", code="api_key_no_trade_permission") >= 100
    assert metric(url, "policy_permissions_lookups_total", result="hit") >= 200


def test_venue_wide_system_status(stack: Stack, start_service: Any, service_log_dir: Path, postgres: Any) -> None:
    venue = Venue(free_port(), service_log_dir).start("maintenance")
    try:
        db = f"policy_m{secrets.token_hex(4)}"
        postgres.create_database(db)
        env = policy_env(stack, postgres.dsn(db), POLICY_VENUE_URL=venue.url)
        env.pop("KRAKEN_CREDENTIALS_DIR")
        svc = start_service("policy", env)
        resp = stack.check(url=svc.url)
        assert [v["code"] for v in resp.json()["violations"]] == ["venue_maintenance"]
        assert resp.json()["venue_status"] == "maintenance"
        ref = httpx.get(f"{svc.url}/v1/reference", headers=bearer(stack.admin), timeout=10).json()
        assert ref["kraken_credentials"] == "not configured"
        # the venue goes away: the last known status is kept and the refresh reports the failure
        venue.stop()
        failed = stack.refresh(url=svc.url)
        assert failed.status_code == 503 and failed.json()["error"] == "refresh_failed"
        assert "venue" in failed.json()["detail"]["errors"]
        assert stack.check(url=svc.url).json()["venue_status"] == "maintenance"
        assert metric(svc.url, "policy_reference_refreshes_total", source="venue", outcome="failed") >= 1
    finally:
        venue.stop()


def test_not_ready_until_instruments_load(stack: Stack, postgres: Any, service_log_dir: Path) -> None:
    """Started with universe-service unreachable: /healthz is 503 and checks answer 503, never a guess."""
    db = f"policy_n{secrets.token_hex(4)}"
    postgres.create_database(db)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "POLICY_", "KRAKEN_"))}
    env.update(policy_env(stack, postgres.dsn(db), POLICY_UNIVERSE_URL=f"http://127.0.0.1:{free_port()}",
                          POLICY_UPSTREAM_TIMEOUT_S="0.5"))
    env.update({"AETHER_HOST": "127.0.0.1", "AETHER_PORT": str(port), "PYTHONPATH": str(REPO)})
    fd, log_name = tempfile.mkstemp(prefix="policy-notready-", suffix=".log", dir=service_log_dir)
    os.close(fd)
    with open(log_name, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sandbox.services.policy"], env=env, cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        def live() -> bool | str:
            if proc.poll() is not None:
                raise RuntimeError(Path(log_name).read_text()[-2000:])
            try:
                return httpx.get(f"{url}/healthz", params={"probe": "live"}, timeout=2).status_code == 200
            except httpx.TransportError as exc:
                return str(exc)

        wait_until(live, timeout=30, interval=0.1, what="policy liveness")
        ready = httpx.get(f"{url}/healthz", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"]["instrument_cache"].startswith("not loaded: universe-service unreachable")
        resp = stack.check(url=url)
        assert resp.status_code == 503 and resp.json()["error"] == "reference_data_unavailable"
        assert resp.headers["retry-after"] == "1"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
