"""risk-service over HTTP: a real subprocess on three embedded PostgreSQL databases, Kafka (Tansu) and NATS,
with tokens from the real auth-service."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest

from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration

Start = Callable[..., Any]
MakeUser = Callable[..., tuple[str, str, str]]


def bearer(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


class Api:
    """Small HTTP helper for one risk-service."""

    def __init__(self, url: str) -> None:
        self.url = url

    def call(self, method: str, path: str, token: str | None, body: Any = None, **params: Any) -> httpx.Response:
        headers = bearer(token) if token else {}
        return httpx.request(method, f"{self.url}{path}", json=body, params=params or None, headers=headers, timeout=10)

    def check(self, token: str, **order: Any) -> httpx.Response:
        doc = {"account": "acct-1", "symbol": "XBT/USD", "side": "buy", "qty": "1", "price": "100", **order}
        return self.call("POST", "/v1/check-order", token, doc)

    def codes(self, token: str, **order: Any) -> list[str]:
        resp = self.check(token, **order)
        assert resp.status_code == 200, resp.text
        return [v["code"] for v in resp.json()["violations"]]


@pytest.fixture
def risk_env(postgres: Any, kafka_broker: Any, nats_server: Any) -> dict[str, str]:
    """Env for a risk-service on three fresh databases and a fresh fills topic."""
    suffix = secrets.token_hex(4)
    for name in ("compliance", "diversification", "esg"):
        postgres.create_database(f"risk_{name}_{suffix}")
    topic = f"oms.fills.risk{suffix}"
    kafka_broker.create_topics([topic], partitions=2)
    return {
        "RISK_COMPLIANCE_DATABASE_URL": postgres.dsn(f"risk_compliance_{suffix}"),
        "RISK_DIVERSIFICATION_DATABASE_URL": postgres.dsn(f"risk_diversification_{suffix}"),
        "RISK_ESG_DATABASE_URL": postgres.dsn(f"risk_esg_{suffix}"),
        "RISK_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "RISK_NATS_URL": nats_server.url,
        "RISK_FILLS_TOPIC": topic,
        "RISK_CONSUMER_GROUP": f"risk-it-{suffix}",
    }


@pytest.fixture
def risk(start_service: Start, risk_env: dict[str, str]) -> Any:
    """A running risk-service."""
    return start_service("risk", risk_env)


@pytest.fixture
def api(risk: Any) -> Api:
    """HTTP helper on the running risk-service."""
    return Api(risk.url)


@pytest.fixture
def producer(kafka_broker: Any) -> Iterator[Callable[..., None]]:
    """Function: ``send(topic, value)`` produces one message and waits for the ack."""
    from confluent_kafka import Producer

    prod = Producer(kafka_broker.producer_config())

    def send(topic: str, value: dict[str, Any] | bytes, key: str | None = None) -> None:
        payload = value if isinstance(value, bytes) else json.dumps(value).encode()
        errors: list[Any] = []
        prod.produce(topic, value=payload, key=key, on_delivery=lambda err, _m: errors.append(err))
        prod.flush(10)
        assert errors == [None], errors

    yield send
    prod.flush(5)
    del prod, send


def fill(fill_id: str, qty: str, price: str, *, account: str = "acct-1", side: str = "buy", **extra: Any) -> dict[str, Any]:
    """An OMS fill document as the OMS publishes it."""
    return {
        "fill_id": fill_id, "order_id": f"o-{fill_id}", "client_order_id": f"c-{fill_id}", "account": account,
        "strategy": "s1", "symbol": "XBT/USD", "side": side, "qty": qty, "price": price, "fee": "0.1",
        "fee_currency": "USD", "liquidity": "taker", "ts": datetime.now(timezone.utc).isoformat(), **extra,
    }


def wait_position(api: Api, token: str, account: str, symbol: str, qty: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the account's positions until ``symbol`` holds ``qty``."""
    seen: dict[str, Any] = {}

    def check() -> bool | str:
        resp = api.call("GET", f"/v1/accounts/{account}/positions", token)
        assert resp.status_code == 200, resp.text
        seen.update(resp.json())
        held = {p["symbol"]: p["qty"] for p in seen["positions"]}
        return Decimal(held.get(symbol, "0")) == Decimal(qty) or f"positions={held}"

    wait_until(check, timeout=timeout, interval=0.2, what=f"{account} {symbol} position {qty}")
    return seen


# --------------------------------------------------------------------------- health, auth, roles


def test_health_metrics_and_openapi(risk: Any) -> None:
    health = httpx.get(f"{risk.url}/healthz", timeout=5)
    assert health.status_code == 200, health.text
    checks = health.json()["checks"]
    assert checks["database"] == "ok" and checks["datasets"] == "ok" and checks["fill_consumer"] == "ok"
    assert checks["nats"] == "ok"
    metrics = httpx.get(f"{risk.url}/metrics", timeout=5).text
    assert "risk_checks_total" in metrics and "risk_fills_total" in metrics
    paths = httpx.get(f"{risk.url}/openapi.json", timeout=5).json()["paths"]
    assert {"/v1/check-order", "/v1/compliance/restricted", "/v1/esg/exclusions", "/v1/audit",
            "/v1/accounts/{account}/kill-switch", "/v1/marks/{symbol}"} <= set(paths)


def test_token_from_auth_accepted_and_revoked_token_rejected(
    api: Api, auth_service: Any, make_user: MakeUser
) -> None:
    assert api.check("").status_code == 401
    forged = api.check("eyJhbGciOiJFZERTQSJ9.e30.AAAA")
    assert forged.status_code == 401 and forged.headers["www-authenticate"] == "Bearer"
    _, _, token = make_user("trader")
    assert api.check(token).status_code == 200
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(token), timeout=5).status_code == 204
    revoked = api.check(token)
    assert revoked.status_code == 401 and revoked.json()["error"] == "unauthorized"
    assert api.call("GET", "/v1/accounts/acct-1/positions", token).status_code == 401


def test_roles_per_endpoint(api: Api, make_user: MakeUser, service_token: Callable[..., str], admin_token: str) -> None:
    _, _, viewer = make_user("viewer")
    _, _, trader = make_user("trader")
    _, _, officer = make_user("risk-officer")
    service = service_token("test-client")
    for token in (trader, service, officer, admin_token):
        assert api.check(token).status_code == 200
    assert api.check(viewer).status_code == 403
    body = {"kind": "symbol", "value": "ETH/USD", "reason": "test"}
    for token in (viewer, trader, service):
        assert api.call("POST", "/v1/compliance/restricted", token, body).status_code == 403
        assert api.call("PUT", "/v1/accounts/acct-1/kill-switch", token, {"active": False}).status_code == 403
        assert api.call("PUT", "/v1/marks/XBT/USD", token, {"price": "1"}).status_code == 403
        assert api.call("PUT", "/v1/limits/defaults", token, {}).status_code == 403
        assert api.call("GET", "/v1/audit", token).status_code == 403
    for token in (viewer, trader, service):
        assert api.call("GET", "/v1/compliance/restricted", token).status_code == 200
        assert api.call("GET", "/v1/accounts/acct-1/kill-switch", token).status_code == 200
    created = api.call("POST", "/v1/compliance/restricted", officer, body)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] != ""
    assert api.call("GET", "/v1/audit", officer).status_code == 200


# --------------------------------------------------------------------------- datasets and audit


def test_restricted_list_crud_checks_and_audit(api: Api, admin_token: str, make_user: MakeUser) -> None:
    officer_name, _, officer = make_user("risk-officer")
    _, _, trader = make_user("trader")
    glob = api.call("POST", "/v1/compliance/restricted", officer,
                    {"kind": "symbol", "value": "xbt/usd", "reason": "sanctioned venue pair"})
    assert glob.status_code == 201, glob.text
    entry = glob.json()
    assert (entry["value"], entry["scope"], entry["account"]) == ("XBT/USD", "global", None)
    dup = api.call("POST", "/v1/compliance/restricted", officer, {"kind": "symbol", "value": "XBT/USD", "reason": "again"})
    assert dup.status_code == 409 and dup.json()["error"] == "restricted_exists"
    own = api.call("POST", "/v1/compliance/restricted", officer,
                   {"kind": "asset", "value": "BTC", "account": "acct-1", "reason": "insider list"})
    assert own.status_code == 201, own.text

    assert api.codes(trader) == ["restricted_symbol", "restricted_asset"]  # XBT is BTC
    assert api.codes(trader, account="acct-2") == ["restricted_symbol"]
    assert api.codes(trader, account="acct-2", symbol="XBT/EUR") == []
    listed = api.call("GET", "/v1/compliance/restricted", trader, account="acct-2").json()
    assert [e["id"] for e in listed["items"]] == [entry["id"]]

    patched = api.call("PATCH", f"/v1/compliance/restricted/{entry['id']}", officer, {"reason": "lifted soon"})
    assert patched.status_code == 200 and patched.json()["reason"] == "lifted soon"
    assert api.call("GET", f"/v1/compliance/restricted/{entry['id']}", trader).json()["reason"] == "lifted soon"
    assert api.call("DELETE", f"/v1/compliance/restricted/{entry['id']}", officer).status_code == 204
    assert api.call("DELETE", f"/v1/compliance/restricted/{entry['id']}", officer).status_code == 404
    assert api.call("GET", f"/v1/compliance/restricted/{entry['id']}", trader).status_code == 404
    assert api.codes(trader, account="acct-2") == []

    bad = api.call("POST", "/v1/compliance/restricted", officer, {"kind": "symbol", "value": "BTC", "reason": "x"})
    assert bad.status_code == 422
    assert api.call("POST", "/v1/compliance/restricted", officer,
                    {"kind": "asset", "value": "BTC", "reason": "x", "extra": 1}).status_code == 422

    trail = api.call("GET", "/v1/audit", officer, dataset="compliance", entity="restricted", key=str(entry["id"]))
    assert trail.status_code == 200, trail.text
    actions = [(e["action"], e["actor"]) for e in trail.json()["items"]]
    assert actions == [("delete", officer_name), ("update", officer_name), ("create", officer_name)]
    update = trail.json()["items"][1]
    assert update["before"]["reason"] == "sanctioned venue pair" and update["after"]["reason"] == "lifted soon"
    assert update["request_id"]


def test_esg_and_limits_crud_checks_and_audit(api: Api, admin_token: str, make_user: MakeUser) -> None:
    _, _, trader = make_user("trader")
    put = api.call("PUT", "/v1/esg/exclusions/xdg", admin_token, {"reason": "meme coin", "score": "12.5"})
    assert put.status_code == 201 and put.json()["score"] == "12.5"
    assert api.call("PUT", "/v1/esg/exclusions/XDG", admin_token, {"reason": "still a meme"}).status_code == 200
    assert api.call("POST", "/v1/esg/exclusions", admin_token, {"asset": "XDG", "reason": "x"}).status_code == 409
    assert api.codes(trader, symbol="DOGE/USD") == ["esg_excluded"]
    assert api.call("GET", "/v1/esg/exclusions/XDG", trader).json()["reason"] == "still a meme"
    assert api.call("DELETE", "/v1/esg/exclusions/XDG", admin_token).status_code == 204
    assert api.codes(trader, symbol="DOGE/USD") == []
    assert api.call("POST", "/v1/esg/exclusions", admin_token, {"asset": "XDG", "reason": "x", "score": 101}).status_code == 422

    assert api.call("PUT", "/v1/limits/defaults", admin_token, {"gross_exposure": "50"}).status_code == 201
    assert api.codes(trader) == ["gross_exposure_limit_exceeded"]
    own = api.call("PUT", "/v1/limits/accounts/acct-1", admin_token, {"gross_exposure": "1000", "daily_loss": 10})
    assert own.status_code == 201, own.text
    assert own.json()["effective"]["gross_exposure"] == "1000"
    assert api.codes(trader) == [] and api.codes(trader, account="acct-2") == ["gross_exposure_limit_exceeded"]
    assert api.codes(trader, qty="10.5") == ["gross_exposure_limit_exceeded"]
    limit = api.call("PUT", "/v1/limits/positions/acct-1/XBT/USD", admin_token, {"max_position": "0.5"})
    assert limit.status_code == 201, limit.text
    assert api.codes(trader) == ["position_limit_exceeded"]
    assert api.call("GET", "/v1/limits/positions", trader, account="acct-1").json()["count"] == 1
    assert api.call("DELETE", "/v1/limits/positions/acct-1/XBT/USD", admin_token).status_code == 204
    assert api.call("DELETE", "/v1/limits/defaults", admin_token).status_code == 204
    assert api.call("GET", "/v1/limits/defaults", trader).json()["gross_exposure"] is None
    assert api.codes(trader, account="acct-2") == []
    assert api.call("PUT", "/v1/limits/accounts/acct-1", admin_token, {"concentration_pct": 101}).status_code == 422

    trail = api.call("GET", "/v1/audit", admin_token).json()["items"]
    seen = {(e["dataset"], e["entity"], e["action"]) for e in trail}
    assert {("esg", "esg_exclusion", "create"), ("esg", "esg_exclusion", "delete"),
            ("diversification", "account_limits", "create"), ("diversification", "position_limit", "delete")} <= seen
    assert [e["at"] for e in trail] == sorted((e["at"] for e in trail), reverse=True)


# --------------------------------------------------------------------------- fills, positions, P&L


def test_fill_on_kafka_moves_the_position_and_the_next_order_breaches_the_limit(
    api: Api, risk_env: dict[str, str], producer: Callable[..., None], admin_token: str, make_user: MakeUser
) -> None:
    _, _, trader = make_user("trader")
    assert api.call("PUT", "/v1/limits/positions/acct-1/XBT/USD", admin_token, {"max_position": "1.5"}).status_code == 201
    assert api.codes(trader) == []  # flat: buying 1 stays within 1.5

    topic = risk_env["RISK_FILLS_TOPIC"]
    producer(topic, fill("f-1", "1", "50000"), key="acct-1")
    producer(topic, fill("f-1", "1", "50000"), key="acct-1")  # redelivery: counted once
    producer(topic, b"not json", key="acct-1")  # the same partition: consumed before f-2 below
    book = wait_position(api, trader, "acct-1", "XBT/USD", "1")
    (pos,) = book["positions"]
    assert (pos["avg_cost"], pos["mark"], pos["exposure"]) == ("50000", "50000", "50000")
    assert pos["realised"] == "-0.1"  # the USD fee

    resp = api.check(trader, price="50000")
    body = resp.json()
    assert [v["code"] for v in body["violations"]] == ["position_limit_exceeded"]
    assert body["violations"][0]["detail"] == {"limit": "1.5", "position": "1", "projected": "2"}
    assert body["allowed"] is False and body["position"] == "1"
    # Selling is reducing: allowed despite the limit.
    assert api.codes(trader, side="sell", qty="1") == []

    producer(topic, fill("f-2", "0.5", "52000", side="sell"), key="acct-1")
    wait_position(api, trader, "acct-1", "XBT/USD", "0.5")
    pnl = api.call("GET", "/v1/accounts/acct-1/pnl", trader).json()
    # Sold 0.5 at +2000 (1000) minus two 0.1 fees; the remaining 0.5 is marked at the last fill (52000): +1000.
    assert Decimal(pnl["realised_today"]) == Decimal("999.8")
    assert Decimal(pnl["day_pnl"]) == Decimal("1999.8")
    assert Decimal(pnl["unrealised_today"]) == Decimal("1000")
    metrics = httpx.get(f"{api.url}/metrics", timeout=5).text
    assert 'risk_fills_total{outcome="duplicate"} 1.0' in metrics
    assert 'risk_fill_messages_rejected_total{reason="invalid_json"} 1.0' in metrics

    # A manual mark revalues the position.
    mark = api.call("PUT", "/v1/marks/XBT/USD", admin_token, {"price": "40000"})
    assert mark.status_code == 200 and mark.json()["source"] == "manual"
    assert api.call("GET", "/v1/accounts/acct-1/positions", trader).json()["gross_exposure"] == "20000"
    assert api.call("PUT", "/v1/limits/accounts/acct-1", admin_token, {"daily_loss": "1000"}).status_code == 201
    # Marked down: today's P&L = 999.8 realised + 0.5 * (40000 - 52000)... measured from the day's open mark.
    assert "daily_loss_limit_breached" in api.codes(trader)


# --------------------------------------------------------------------------- kill switch


def test_kill_switch_is_broadcast_on_nats_and_blocks_checks(
    api: Api, nats_server: Any, make_user: MakeUser
) -> None:
    officer_name, _, officer = make_user("risk-officer")
    _, _, trader = make_user("trader")

    async def scenario() -> list[dict[str, Any]]:
        import nats

        nc = await nats.connect(nats_server.url)
        got: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

        async def on_message(msg: Any) -> None:
            await got.put({"subject": msg.subject, **json.loads(msg.data)})

        await nc.subscribe("risk.killswitch.>", cb=on_message)
        await nc.flush()
        messages = []
        async with httpx.AsyncClient(base_url=api.url, headers=bearer(officer), timeout=10) as http:
            on = await http.put("/v1/accounts/acct-9/kill-switch", json={"active": True, "reason": "runaway algo"})
            assert on.status_code == 200, on.text
            assert on.json()["broadcast"] is True and on.json()["active"] is True
            messages.append(await asyncio.wait_for(got.get(), 10))
            assert api.codes(trader, account="acct-9") == ["kill_switch_active"]
            assert api.codes(trader, account="acct-1") == []
            off = await http.put("/v1/accounts/acct-9/kill-switch", json={"active": False})
            assert off.status_code == 200
            messages.append(await asyncio.wait_for(got.get(), 10))
        await nc.drain()
        return messages

    on, off = asyncio.run(scenario())
    assert on["subject"] == "risk.killswitch.acct-9"
    assert (on["account"], on["active"], on["reason"], on["set_by"]) == ("acct-9", True, "runaway algo", officer_name)
    assert datetime.fromisoformat(on["at"]).tzinfo is not None
    assert (off["active"], off["rebroadcast"]) == (False, False)
    assert api.codes(trader, account="acct-9") == []
    state = api.call("GET", "/v1/accounts/acct-9/kill-switch", trader).json()
    assert (state["active"], state["set_by"]) == (False, officer_name)
    missing = api.call("PUT", "/v1/accounts/acct-9/kill-switch", officer, {"active": True})
    assert missing.status_code == 422  # activating needs a reason
    trail = api.call("GET", "/v1/audit", officer, entity="kill_switch", key="acct-9").json()["items"]
    assert [(e["action"], e["after"]["active"]) for e in trail] == [("update", False), ("create", True)]


def test_state_survives_restart_and_replicas_stay_coherent(
    start_service: Start, risk_env: dict[str, str], producer: Callable[..., None], admin_token: str, make_user: MakeUser
) -> None:
    _, _, trader = make_user("trader")
    first = Api(start_service("risk", risk_env).url)
    second = Api(start_service("risk", risk_env).url)  # a second replica on the same datasets
    assert first.call("PUT", "/v1/accounts/acct-5/kill-switch", admin_token,
                      {"active": True, "reason": "compliance hold"}).status_code == 200
    assert first.call("PUT", "/v1/esg/exclusions/ETH", admin_token, {"reason": "x"}).status_code == 201

    def second_sees() -> bool | str:
        codes = second.codes(trader, account="acct-5", symbol="ETH/USD")
        return codes == ["kill_switch_active", "esg_excluded"] or f"codes={codes}"

    wait_until(second_sees, timeout=10, interval=0.1, what="replica coherence via NOTIFY")
    producer(risk_env["RISK_FILLS_TOPIC"], fill("r-1", "2", "100", account="acct-5"))
    wait_position(first, trader, "acct-5", "XBT/USD", "2")
    wait_position(second, trader, "acct-5", "XBT/USD", "2")

    third = Api(start_service("risk", risk_env).url)  # a restart: everything comes back from the databases
    assert third.codes(trader, account="acct-5", symbol="ETH/USD") == ["kill_switch_active", "esg_excluded"]
    assert third.call("GET", "/v1/accounts/acct-5/positions", trader).json()["positions"][0]["qty"] == "2"


# --------------------------------------------------------------------------- capital-allocator


@pytest.fixture
def allocator() -> Iterator[Any]:
    """A stand-in capital-allocator on loopback: ``GET /v1/strategies/{s}/capital`` from a dict."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    capital: dict[str, str] = {"s1": "1000"}
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server API)
            seen.append(self.headers.get("Authorization", ""))
            parts = self.path.split("/")
            strategy = parts[3] if len(parts) == 5 and parts[4] == "capital" else None
            if strategy not in capital:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps({"strategy": strategy, "available": capital[strategy], "currency": "USD"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.capital, server.seen = capital, seen  # type: ignore[attr-defined]
    server.url = f"http://127.0.0.1:{server.server_address[1]}"  # type: ignore[attr-defined]
    yield server
    server.shutdown()
    server.server_close()


def test_strategy_capital_from_the_allocator(
    start_service: Start, risk_env: dict[str, str], allocator: Any, auth_service: Any, make_user: MakeUser
) -> None:
    _, _, trader = make_user("trader")
    env = {
        **risk_env, "RISK_CAPITAL_ALLOCATOR_URL": allocator.url, "RISK_CAPITAL_TTL_SECONDS": "0.5",
        "RISK_CAPITAL_ERROR_TTL_SECONDS": "0.2", "AETHER_SERVICE_CLIENT_ID": "test-client",
        "AETHER_SERVICE_CLIENT_SECRET": auth_service.service_accounts["test-client"],
    }
    api = Api(start_service("risk", env).url)
    ok = api.check(trader, strategy="s1", qty="10", price="100")
    assert ok.status_code == 200 and ok.json()["allowed"] is True
    assert ok.json()["capital_available"] == "1000"
    assert allocator.seen and allocator.seen[0].startswith("Bearer ")
    too_big = api.check(trader, strategy="s1", qty="10.5", price="100").json()["violations"]
    assert [(v["code"], v["detail"]["available"]) for v in too_big] == [("insufficient_capital", "1000")]
    assert api.codes(trader, strategy="unknown") == ["capital_not_allocated"]
    assert api.codes(trader) == []  # no strategy: no capital rule

    allocator.shutdown()
    allocator.server_close()

    def unavailable() -> bool | str:
        codes = api.codes(trader, strategy="s1")
        return codes == ["capital_unavailable"] or f"codes={codes}"

    wait_until(unavailable, timeout=10, interval=0.2, what="capital_unavailable once the allocator is gone")
    assert api.codes(trader) == []


def test_capital_from_the_real_capital_allocator(
    start_service: Start, risk_env: dict[str, str], postgres: Any, auth_service: Any, admin_token: str,
    make_user: MakeUser,
) -> None:
    pytest.importorskip("sandbox.services.capital_allocator")
    _, _, trader = make_user("trader")
    db = f"capital_risk_{secrets.token_hex(4)}"
    postgres.create_database(db)
    allocator = start_service("capital_allocator", {
        "AETHER_SERVICE_NAME": "capital-allocator", "CAPITAL_ALLOCATOR_DB_URL": postgres.dsn(db),
    })
    admin = Api(allocator.url)
    assert admin.call("PUT", "/v1/portfolio", admin_token, {"nav": "1000"}).status_code == 200
    assert admin.call("PUT", "/v1/strategies/s1/target", admin_token, {"weight": "1"}).status_code in (200, 201)
    assert admin.call("POST", "/v1/strategies/s1/allocate", admin_token).status_code == 200
    assert admin.call("GET", "/v1/strategies/s1/capital", admin_token).json()["available"] in ("1000", "1000.00")

    api = Api(start_service("risk", {
        **risk_env, "RISK_CAPITAL_ALLOCATOR_URL": allocator.url, "RISK_CAPITAL_TTL_SECONDS": "0.2",
        "AETHER_SERVICE_CLIENT_ID": "test-client", "AETHER_SERVICE_CLIENT_SECRET": auth_service.service_accounts["test-client"],
    }).url)
    assert api.codes(trader, strategy="s1", qty="10", price="100") == []
    assert api.codes(trader, strategy="s1", qty="10.01", price="100") == ["insufficient_capital"]
    assert api.codes(trader, strategy="ghost") == ["capital_not_allocated"]

    # An open order reserves 600 at the allocator: risk sees 400 available once its cache expires.
    reserved = admin.call("POST", "/v1/strategies/s1/reservations", admin_token, {"order_id": "o-1", "amount": "600"})
    assert reserved.status_code == 201, reserved.text

    def shrunk() -> bool | str:
        codes = api.codes(trader, strategy="s1", qty="5", price="100")
        return codes == ["insufficient_capital"] or f"codes={codes}"

    wait_until(shrunk, timeout=10, interval=0.2, what="risk sees the reservation")
    assert api.codes(trader, strategy="s1", qty="4", price="100") == []

    allocator.stop()

    def gone() -> bool | str:
        codes = api.codes(trader, strategy="s1")
        return codes == ["capital_unavailable"] or f"codes={codes}"

    wait_until(gone, timeout=15, interval=0.2, what="capital_unavailable with the allocator stopped")
