"""fees-service over HTTP: a real subprocess on embedded PostgreSQL and Kafka (Tansu), tokens from auth-service."""

from __future__ import annotations

import json
import re
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

# Kraken's real XBT/USD tiers (public/AssetPairs, 2026), cost_decimals 5.
XBTUSD = {
    "quote": "ZUSD",
    "quote_decimals": 5,
    "fee_volume_currency": "ZUSD",
    "fees": [[0, 0.4], [10000, 0.35], [50000, 0.24], [100000, 0.22], [250000, 0.2], [500000, 0.18],
             [1000000, 0.16], [2500000, 0.14], [5000000, 0.12], [10000000, 0.1], [100000000, 0.08],
             [500000000, 0.05]],
    "fees_maker": [[0, 0.25], [10000, 0.2], [50000, 0.14], [100000, 0.12], [250000, 0.1], [500000, 0.08],
                   [1000000, 0.06], [2500000, 0.04], [5000000, 0.02], [10000000, 0.0], [100000000, 0.0],
                   [500000000, 0.0]],
}


def bearer(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def now_iso() -> str:
    """The current time, RFC 3339 with offset."""
    return datetime.now(timezone.utc).isoformat()


def read_metric(base: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    total = 0.0
    for line in httpx.get(f"{base}/metrics", timeout=5).text.splitlines():
        match = re.match(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", line)
        if match and all(f'{k}="{v}"' in (match.group(1) or "") for k, v in labels.items()):
            total += float(match.group(2))
    return total


@pytest.fixture
def topic(kafka_broker: Any) -> str:
    """A fresh fills topic per test (production uses ``oms.fills``), created explicitly."""
    name = f"oms.fills.it{secrets.token_hex(4)}"
    kafka_broker.create_topics([name], partitions=2)
    return name


@pytest.fixture
def fees_env(postgres: Any, kafka_broker: Any, topic: str) -> dict[str, str]:
    """Env for a fees-service on a fresh database, consuming ``topic``."""
    dbname = f"fees_{secrets.token_hex(4)}"
    postgres.create_database(dbname)
    return {
        "FEES_DATABASE_URL": postgres.dsn(dbname),
        "FEES_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "FEES_FILLS_TOPIC": topic,
        "FEES_CONSUMER_GROUP": f"fees-it-{secrets.token_hex(4)}",
        "FEES_VOLUME_CACHE_SECONDS": "0.5",
    }


@pytest.fixture
def fees(start_service: Start, fees_env: dict[str, str]) -> Any:
    """A running fees-service."""
    return start_service("fees", fees_env)


@pytest.fixture
def producer(kafka_broker: Any) -> Iterator[Callable[..., None]]:
    """Function: ``send(topic, value)`` produces one message (dict -> JSON, bytes as is) and waits for the ack."""
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
    del prod, send  # librdkafka keeps reconnecting (and logging) while the object lives


def put_schedule(base: str, token: str, symbol: str = "XBT/USD", body: dict[str, Any] | None = None) -> httpx.Response:
    """PUT a schedule (raw slash in the path)."""
    return httpx.put(f"{base}/v1/schedules/{symbol}", json=body or XBTUSD, headers=bearer(token), timeout=10)


def estimate(base: str, token: str, **body: Any) -> httpx.Response:
    """POST /v1/estimate."""
    doc = {"account": "acct-1", "symbol": "XBT/USD", "side": "buy", "qty": "0.1", "price": "50000", **body}
    return httpx.post(f"{base}/v1/estimate", json=doc, headers=bearer(token), timeout=10)


def fill(fill_id: str, account: str, qty: str, price: str, **extra: Any) -> dict[str, Any]:
    """An OMS fill document."""
    return {
        "fill_id": fill_id, "account": account, "symbol": "XBT/USD", "side": "buy", "qty": qty, "price": price,
        "fee": "0", "liquidity": "taker", "ts": now_iso(), **extra,
    }


def volume(base: str, token: str, account: str) -> dict[str, Any]:
    """GET the account's volume document."""
    resp = httpx.get(f"{base}/v1/accounts/{account}/volume", headers=bearer(token), timeout=10)
    assert resp.status_code == 200, resp.text
    return resp.json()


def wait_volume(base: str, token: str, account: str, expected: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll the account's volume until it equals ``expected`` USD."""
    seen: dict[str, Any] = {}

    def check() -> bool | str:
        seen.update(volume(base, token, account))
        return Decimal(seen["volume_usd"]) == Decimal(expected) or f"volume_usd={seen['volume_usd']}"

    wait_until(check, timeout=timeout, interval=0.2, what=f"{account} volume {expected}")
    return seen


# --------------------------------------------------------------------------- health, auth


def test_health_metrics_and_openapi(fees: Any) -> None:
    health = httpx.get(f"{fees.url}/healthz", timeout=5).json()
    assert health["status"] == "ok"
    assert health["checks"]["database"] == "ok" and health["checks"]["fill_consumer"] == "ok"
    assert health["checks"]["timescaledb"].startswith(("absent", "present"))
    assert httpx.get(f"{fees.url}/healthz?probe=live", timeout=5).status_code == 200
    paths = httpx.get(f"{fees.url}/openapi.json", timeout=5).json()["paths"]
    assert {"/v1/estimate", "/v1/fills", "/v1/accounts/{account}/volume", "/v1/schedules/{symbol}"} <= set(paths)
    assert "fees_fills_total" in httpx.get(f"{fees.url}/metrics", timeout=5).text


def test_token_from_auth_accepted_and_revoked_token_rejected(
    fees: Any, auth_service: Any, admin_token: str, make_user: Callable[..., tuple[str, str, str]]
) -> None:
    assert put_schedule(fees.url, admin_token).status_code == 201
    _, _, token = make_user("trader")
    assert estimate(fees.url, token).status_code == 200
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(token), timeout=5).status_code == 204
    revoked = estimate(fees.url, token)
    assert revoked.status_code == 401
    assert revoked.json()["error"] == "unauthorized"
    assert revoked.headers["www-authenticate"] == "Bearer"


def test_roles_per_endpoint(
    fees: Any, admin_token: str, make_user: Callable[..., tuple[str, str, str]], service_token: Callable[..., str]
) -> None:
    _, _, viewer = make_user("viewer")
    _, _, trader = make_user("trader")
    svc = service_token()
    assert httpx.get(f"{fees.url}/v1/schedules", timeout=5).status_code == 401
    assert httpx.get(f"{fees.url}/v1/schedules", headers=bearer("not.a.jwt"), timeout=5).status_code == 401
    assert put_schedule(fees.url, viewer).status_code == 403
    assert put_schedule(fees.url, trader).status_code == 403
    assert put_schedule(fees.url, admin_token).status_code == 201
    assert httpx.get(f"{fees.url}/v1/schedules", headers=bearer(viewer), timeout=5).status_code == 200
    assert estimate(fees.url, viewer).status_code == 200
    assert estimate(fees.url, svc).status_code == 200
    doc = fill(f"r-{secrets.token_hex(4)}", "acct-roles", "0.1", "100")
    forbidden = httpx.post(f"{fees.url}/v1/fills", json=doc, headers=bearer(trader), timeout=5)
    assert forbidden.status_code == 403 and forbidden.json()["error"] == "forbidden"
    assert httpx.post(f"{fees.url}/v1/fills", json=doc, headers=bearer(svc), timeout=5).status_code == 201
    assert httpx.delete(f"{fees.url}/v1/schedules/XBT/USD", headers=bearer(trader), timeout=5).status_code == 403


# --------------------------------------------------------------------------- schedules


def test_schedule_lifecycle(fees: Any, admin_token: str) -> None:
    created = put_schedule(fees.url, admin_token, "xbt/usd")
    assert created.status_code == 201, created.text
    doc = created.json()
    assert (doc["symbol"], doc["quote"], doc["quote_decimals"], doc["source"]) == ("XBT/USD", "USD", 5, "manual")
    assert doc["fees"][1] == ["10000", "0.35"] and doc["fees_maker"][9] == ["10000000", "0.0"]
    # the slash may be percent-encoded too
    got = httpx.get(f"{fees.url}/v1/schedules/XBT%2FUSD", headers=bearer(admin_token), timeout=5)
    assert got.status_code == 200 and got.json()["fees"] == doc["fees"]
    replaced = put_schedule(fees.url, admin_token, body={"quote": "USD", "quote_decimals": 2, "fees": [[0, "0.26"]]})
    assert replaced.status_code == 200
    assert replaced.json()["fees_maker"] == [["0", "0.26"]]
    listed = httpx.get(f"{fees.url}/v1/schedules", headers=bearer(admin_token), timeout=5).json()
    assert [s["symbol"] for s in listed["items"]] == ["XBT/USD"] and listed["count"] == 1
    bad = put_schedule(fees.url, admin_token, body={"quote": "USD", "quote_decimals": 2, "fees": [[10, "0.26"]]})
    assert bad.status_code == 422 and "start at volume 0" in bad.text
    assert httpx.delete(f"{fees.url}/v1/schedules/XBT/USD", headers=bearer(admin_token), timeout=5).status_code == 204
    missing = httpx.get(f"{fees.url}/v1/schedules/XBT/USD", headers=bearer(admin_token), timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "schedule_not_found"
    assert httpx.delete(f"{fees.url}/v1/schedules/XBT/USD", headers=bearer(admin_token), timeout=5).status_code == 404


def test_schedules_and_fills_survive_a_restart(
    start_service: Start, fees_env: dict[str, str], admin_token: str
) -> None:
    first = start_service("fees", fees_env)
    assert put_schedule(first.url, admin_token).status_code == 201
    resp = httpx.post(f"{first.url}/v1/fills", json=fill("keep-1", "acct-keep", "1", "20000"),
                      headers=bearer(admin_token), timeout=5)
    assert resp.status_code == 201
    first.stop()
    second = start_service("fees", fees_env)
    assert httpx.get(f"{second.url}/v1/schedules/XBT/USD", headers=bearer(admin_token), timeout=5).status_code == 200
    assert Decimal(volume(second.url, admin_token, "acct-keep")["volume_usd"]) == Decimal(20000)


# --------------------------------------------------------------------------- estimates


def test_estimate_through_http(fees: Any, admin_token: str, make_user: Callable[..., tuple[str, str, str]]) -> None:
    assert put_schedule(fees.url, admin_token).status_code == 201
    _, _, trader = make_user("trader")
    resp = estimate(fees.url, trader, account="acct-est", qty="0.12345678", price="65432.1")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    # cost 0.12345678 * 65432.1 = 8077.99... exactly 8077.9998... -> rounded half-up to 5 dp
    cost = (Decimal("0.12345678") * Decimal("65432.1")).quantize(Decimal("0.00001"))
    assert Decimal(doc["cost"]) == cost and doc["cost"] == str(cost)
    assert doc["fee"] == str((cost * Decimal("0.4") / 100).quantize(Decimal("0.00001")))
    assert (doc["rate"], doc["currency"], doc["decimals"], doc["rounding"]) == ("0.4", "USD", 5, "ROUND_HALF_UP")
    assert doc["tier"] == {"index": 0, "volume": "0", "percent": "0.4", "next_volume": "10000",
                           "next_percent": "0.35", "volume_to_next": "10000"}
    assert doc["price_source"] == "price" and doc["schedule_source"] == "manual"
    maker = estimate(fees.url, trader, account="acct-est", qty="2", price="5000", liquidity="maker").json()
    assert (maker["fee"], maker["rate"]) == ("25.00000", "0.25")
    market = estimate(fees.url, trader, account="acct-est", order_type="market", price=None, reference_price="100")
    assert market.status_code == 200 and market.json()["price_source"] == "reference_price"
    assert market.json()["cost"] == "10.00000"


BAD_ESTIMATES = [
    ({"order_type": "market", "price": None}, 422, "needs a price or a reference_price"),
    ({"price": None}, 422, "a limit order needs a price"),
    ({"order_type": "market", "liquidity": "maker"}, 422, "takes liquidity"),
    ({"qty": "-1"}, 422, "greater than 0"),
    ({"qty": "NaN"}, 422, "validation_error"),
    ({"price": "1e400"}, 422, "validation_error"),
    ({"account": "x" * 100}, 422, "validation_error"),
    ({"symbol": "DOGE/EUR"}, 404, "no fee schedule for DOGE/EUR"),
    ({"unexpected": True}, 422, "Extra inputs"),
]


def test_bad_estimates_are_clear_4xx(fees: Any, admin_token: str) -> None:
    assert put_schedule(fees.url, admin_token).status_code == 201
    for body, status, message in BAD_ESTIMATES:
        doc = {"account": "a", "symbol": "XBT/USD", "side": "buy", "qty": "1", "price": "1", **body}
        doc = {k: v for k, v in doc.items() if v is not None}
        resp = httpx.post(f"{fees.url}/v1/estimate", json=doc, headers=bearer(admin_token), timeout=5)
        assert resp.status_code == status, (body, resp.text)
        assert message in resp.text, (body, resp.text)


def test_malformed_json_is_422(fees: Any, admin_token: str) -> None:
    resp = httpx.post(f"{fees.url}/v1/estimate", content=b'{"account": ', timeout=5,
                      headers={**bearer(admin_token), "Content-Type": "application/json"})
    assert resp.status_code == 422 and resp.json()["error"] == "validation_error"


# --------------------------------------------------------------------------- volume from fills


def test_kafka_fills_move_the_account_to_the_next_tier_and_duplicates_count_once(
    fees: Any, admin_token: str, topic: str, producer: Callable[..., None]
) -> None:
    assert put_schedule(fees.url, admin_token).status_code == 201
    account = f"acct-{secrets.token_hex(3)}"
    before = estimate(fees.url, admin_token, account=account, qty="1", price="1000").json()
    assert (before["rate"], before["tier"]["index"], before["fee"]) == ("0.4", 0, "4.00000")

    first = fill("k-1", account, "0.1", "60000")  # 6,000 USD
    producer(topic, first, key=account)
    producer(topic, first, key=account)  # the same fill again
    doc = wait_volume(fees.url, admin_token, account, "6000")
    assert doc["fill_count"] == 1
    assert doc["instruments"][0]["taker"]["index"] == 0
    assert Decimal(doc["instruments"][0]["taker"]["volume_to_next"]) == Decimal(4000)

    second = fill("k-2", account, "0.0666667", "60000")  # 4,000.002 USD -> past 10,000
    producer(topic, second, key=account)
    doc = wait_volume(fees.url, admin_token, account, "10000.002")
    tiers = doc["instruments"][0]
    assert (tiers["symbol"], tiers["taker"]["index"], tiers["taker"]["percent"]) == ("XBT/USD", 1, "0.35")
    assert tiers["maker"]["percent"] == "0.2"

    after = estimate(fees.url, admin_token, account=account, qty="1", price="1000").json()
    assert (after["rate"], after["tier"]["index"], after["fee"]) == ("0.35", 1, "3.50000")
    assert Decimal(after["volume_usd"]) == Decimal("10000.002")

    # a replay (as after a consumer restart) changes nothing; the same id with other content neither
    producer(topic, second, key=account)
    producer(topic, {**first, "qty": "5"}, key=account)
    # a marker on the same partition (same key), so consumed after the replay
    producer(topic, fill("k-3", "someone-else", "1", "1"), key=account)
    wait_volume(fees.url, admin_token, "someone-else", "1")
    assert volume(fees.url, admin_token, account)["fill_count"] == 2
    assert read_metric(fees.url, "fees_fills_total", source="kafka", status="duplicate") == 2
    assert read_metric(fees.url, "fees_fills_total", source="kafka", status="conflict") == 1
    assert read_metric(fees.url, "fees_fills_total", source="kafka", status="recorded") == 3


def test_invalid_kafka_messages_are_skipped_not_fatal(
    fees: Any, admin_token: str, topic: str, producer: Callable[..., None]
) -> None:
    account = f"acct-{secrets.token_hex(3)}"
    # One key, so one of the topic's two partitions and in this order: the good fill is consumed after the bad ones.
    producer(topic, b"{not json", key=account)
    producer(topic, fill("bad-1", account, "-1", "100"), key=account)
    producer(topic, {**fill("ok-1", account, "2", "100"), "order_id": "o-1"}, key=account)  # extra fields are fine
    wait_volume(fees.url, admin_token, account, "200")
    assert read_metric(fees.url, "fees_fill_messages_rejected_total", reason="invalid_json") == 1
    assert read_metric(fees.url, "fees_fill_messages_rejected_total", reason="invalid_fill") == 1
    assert httpx.get(f"{fees.url}/healthz", timeout=5).status_code == 200


def test_http_fills_are_idempotent(fees: Any, admin_token: str, service_token: Callable[..., str]) -> None:
    svc = service_token()
    account = f"acct-{secrets.token_hex(3)}"
    doc = fill(f"h-{secrets.token_hex(3)}", account, "0.5", "30000")
    first = httpx.post(f"{fees.url}/v1/fills", json=doc, headers=bearer(svc), timeout=5)
    assert first.status_code == 201, first.text
    assert first.json() == {"fill_id": doc["fill_id"], "status": "recorded", "usd_notional": "15000"}
    again = httpx.post(f"{fees.url}/v1/fills", json={**doc, "qty": "0.50"}, headers=bearer(svc), timeout=5)
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    other = httpx.post(f"{fees.url}/v1/fills", json={**doc, "qty": "0.6"}, headers=bearer(svc), timeout=5)
    assert other.status_code == 409 and other.json()["error"] == "fill_conflict"
    doc_vol = volume(fees.url, admin_token, account)
    assert (Decimal(doc_vol["volume_usd"]), doc_vol["fill_count"]) == (Decimal(15000), 1)
    # a non-USD quote without a rate is reported, not guessed
    eur = fill(f"h-{secrets.token_hex(3)}", account, "1", "100", symbol="ETH/EUR")
    assert httpx.post(f"{fees.url}/v1/fills", json=eur, headers=bearer(svc), timeout=5).json()["usd_notional"] is None
    doc_vol = volume(fees.url, admin_token, account)
    assert doc_vol["unpriced"] == {"EUR": "100"} and Decimal(doc_vol["volume_usd"]) == Decimal(15000)


def test_bad_fills_are_4xx_and_write_nothing(fees: Any, admin_token: str) -> None:
    account = f"acct-{secrets.token_hex(3)}"
    cases = [
        fill("x-1", account, "0", "1"),
        fill("x-2", account, "1", "1", ts="2026-01-01T00:00:00"),  # no offset
        fill("x-3", account, "1", "1", ts="2999-01-01T00:00:00Z"),
        fill("x 4", account, "1", "1"),
        {**fill("x-5", account, "1", "1"), "liquidity": "both"},
        {**fill("x-6", account, "1", "1"), "order_id": "extra"},
    ]
    for doc in cases:
        resp = httpx.post(f"{fees.url}/v1/fills", json=doc, headers=bearer(admin_token), timeout=5)
        assert resp.status_code == 422, (doc, resp.text)
    assert volume(fees.url, admin_token, account)["fill_count"] == 0


# --------------------------------------------------------------------------- schedules from universe-service

#: Two entries of a real Kraken public/AssetPairs response (2026), served to universe-service by a
#: static loopback "venue" so this test does not depend on the venue simulator.
ASSETPAIRS = {
    "error": [],
    "result": {
        "XXBTZUSD": {
            "altname": "XBTUSD", "wsname": "XBT/USD", "aclass_base": "currency", "base": "XXBT",
            "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5, "pair_decimals": 1,
            "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [2, 3], "leverage_sell": [2, 3],
            "fees": XBTUSD["fees"], "fees_maker": XBTUSD["fees_maker"], "fee_volume_currency": "ZUSD",
            "margin_call": 80, "margin_stop": 40, "ordermin": "0.00005", "costmin": "0.5", "tick_size": "0.1",
            "status": "online",
        },
        "XETHZUSD": {
            "altname": "ETHUSD", "wsname": "ETH/USD", "aclass_base": "currency", "base": "XETH",
            "aclass_quote": "currency", "quote": "ZUSD", "lot": "unit", "cost_decimals": 5, "pair_decimals": 2,
            "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [2, 3], "leverage_sell": [2, 3],
            "fees": [[0, 0.4], [10000, 0.35]], "fees_maker": [[0, 0.25], [10000, 0.2]],
            "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40, "ordermin": "0.001",
            "costmin": "0.5", "tick_size": "0.01", "status": "online",
        },
    },
}


@pytest.fixture
def static_venue() -> Iterator[str]:
    """A loopback HTTP server answering GET /0/public/AssetPairs with :data:`ASSETPAIRS`."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps(ASSETPAIRS).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            ok = self.path.split("?")[0] == "/0/public/AssetPairs"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body if ok else b'{"error":["EGeneral:Unknown method"]}')

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_schedules_come_from_universe_service(
    start_service: Start, postgres: Any, static_venue: str, fees_env: dict[str, str], admin_token: str,
    make_user: Callable[..., tuple[str, str, str]],
) -> None:
    dbname = f"universe_{secrets.token_hex(4)}"
    postgres.create_database(dbname)
    universe = start_service(
        "universe", {"UNIVERSE_DATABASE_URL": postgres.dsn(dbname), "UNIVERSE_VENUE_URL": static_venue}
    )
    fees = start_service("fees", {**fees_env, "FEES_UNIVERSE_URL": universe.url})
    _, _, trader = make_user("trader")

    # first use: fetched from universe-service with the fees service account's token, then cached
    resp = estimate(fees.url, trader, account="acct-u", symbol="XBT/USD", qty="2", price="5000")
    assert resp.status_code == 200, resp.text
    doc = resp.json()
    assert (doc["schedule_source"], doc["currency"], doc["decimals"]) == ("universe", "USD", 5)
    assert (doc["cost"], doc["fee"], doc["rate"]) == ("10000.00000", "40.00000", "0.4")
    schedule = httpx.get(f"{fees.url}/v1/schedules/XBT/USD", headers=bearer(trader), timeout=5).json()
    assert schedule["source"] == "universe" and len(schedule["fees"]) == 12
    assert Decimal(schedule["fees_maker"][1][1]) == Decimal("0.2")
    eth = estimate(fees.url, trader, account="acct-u", symbol="eth/usd", qty="1", price="3000", liquidity="maker")
    assert eth.status_code == 200 and eth.json()["fee"] == "7.50000"

    unknown = estimate(fees.url, trader, symbol="NOPE/USD")
    assert unknown.status_code == 404 and unknown.json()["error"] == "schedule_not_found"

    # an admin's schedule pins the symbol over universe-service's, until deleted
    pinned = put_schedule(fees.url, admin_token, body={"quote": "USD", "quote_decimals": 2, "fees": [[0, "0.1"]]})
    assert pinned.status_code == 200 and pinned.json()["source"] == "manual"
    assert estimate(fees.url, trader, qty="2", price="5000").json()["fee"] == "10.00"
    assert httpx.delete(f"{fees.url}/v1/schedules/XBT/USD", headers=bearer(admin_token), timeout=5).status_code == 204
    assert estimate(fees.url, trader, qty="2", price="5000").json()["schedule_source"] == "universe"

    # universe-service down: cached schedules keep serving; an uncached symbol is a clear 503
    universe.stop()
    assert estimate(fees.url, trader, qty="2", price="5000").status_code == 200
    down = estimate(fees.url, trader, symbol="SOL/USD")
    assert down.status_code == 503 and down.json()["error"] == "universe_unavailable"
    assert read_metric(fees.url, "fees_schedule_lookups_total", outcome="fetched") >= 2
