"""Hot routes answer exactly as their FastAPI routes do, and only when FastAPI would have picked them (no servers)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import fakeredis
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response
from fastapi.testclient import TestClient
from pydantic import BaseModel, ConfigDict, Field

from sandbox.services.kit import CurrentPrincipal, KitSettings, ServiceError, TokenVerifier, create_service_app, require_roles
from sandbox.services.kit.auth import session_key
from sandbox.services.kit.decimal_json import DecimalRoute
from sandbox.services.kit.hot import FALLBACK, HotAnswer, HotCall, HotRoute

KEY = Ed25519PrivateKey.generate()
JWKS = {"keys": [{**jwt.algorithms.OKPAlgorithm.to_jwk(KEY.public_key(), as_dict=True), "kid": "k", "alg": "EdDSA"}]}


def make_token(*, sid: str, roles: list[str] | None = None) -> str:
    now = int(time.time())
    claims = {"iss": "aether-auth", "aud": "aether", "sub": "alice", "roles": roles or ["trader"], "sid": sid,
              "kind": "user", "scope": [], "iat": now, "exp": now + 86_400, "typ": "access"}  # module-level tokens outlive a long test run
    return jwt.encode(claims, KEY, algorithm="EdDSA", headers={"kid": "k"})


class Order(BaseModel):
    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(min_length=1, max_length=16)
    qty: Decimal = Field(gt=0)


def _answer(name: str, order: Order) -> bytes:
    if order.symbol == "missing":
        raise ServiceError(404, "no_such_symbol", f"no symbol {order.symbol}", headers={"Retry-After": "1"})
    if order.symbol == "crash":
        raise RuntimeError("boom")
    return json.dumps({"name": name, "symbol": order.symbol, "qty": str(order.qty)}).encode()


def _item(name: str) -> HotAnswer:
    if name == "gone":
        raise ServiceError(410, "gone", "it went")
    return HotAnswer(json.dumps({"item": name}).encode(), headers=((b"etag", b'"1"'), (b"cache-control", b"no-cache")))


def build(calls: dict[str, int], *, hot: bool, server: fakeredis.FakeServer, max_body: int = 1 << 20) -> FastAPI:
    """An app with two endpoints; with ``hot`` they also get hot routes that count their calls."""
    router = APIRouter(route_class=DecimalRoute)

    @router.get("/items/{name:path}/fees")  # declared first: shadows the hot template below for these paths
    async def fees(name: str, _: CurrentPrincipal) -> dict:
        calls["fees"] += 1
        return {"fees": name}

    @router.get("/items/{name:path}")
    async def item(name: str, _: CurrentPrincipal) -> Response:
        calls["fastapi"] += 1
        answer = _item(name)
        return Response(answer.body, media_type="application/json", headers={"ETag": '"1"', "Cache-Control": "no-cache"})

    @router.post("/orders/{name}", dependencies=[require_roles("trader")])
    async def order(name: str, body: Order) -> Response:
        calls["fastapi"] += 1
        return Response(_answer(name, body), media_type="application/json")

    async def order_hot(call: HotCall) -> object:
        calls["hot"] += 1
        if call.body.symbol == "decline":
            return FALLBACK
        return _answer(call.params["name"], call.body)

    async def item_hot(call: HotCall) -> object:
        calls["hot"] += 1
        return _item(call.params["name"])

    async def wire(app: FastAPI) -> None:
        app.state.sessions = fakeredis.aioredis.FakeRedis(server=server)
        app.state.verifier = TokenVerifier(keys=JWKS)

    routes = [HotRoute("POST", "/orders/{name}", order_hot, roles=("trader",), body=Order, decimal=True),
              HotRoute("GET", "/items/{name:path}", item_hot)]
    kit = KitSettings(service_name="hot-test", session_redis_url="redis://127.0.0.1:1/0", max_body_bytes=max_body)
    return create_service_app(kit=kit, title="t", routers=[router], on_startup=[wire], hot_routes=routes if hot else ())


@pytest.fixture
def server() -> Iterator[fakeredis.FakeServer]:
    server = fakeredis.FakeServer()
    redis = fakeredis.FakeRedis(server=server)
    for sid in ("live", "live-viewer", "revoked"):
        redis.set(session_key(sid), "1")
    yield server


def _comparable(resp: Any) -> tuple[int, bytes, list[tuple[str, str]]]:
    headers = [(k, v) for k, v in resp.headers.items() if k != "x-request-id"]
    assert resp.headers["x-request-id"]
    return resp.status_code, resp.content, headers


TRADER = make_token(sid="live")
VIEWER = make_token(sid="live-viewer", roles=["viewer"])
REVOKED = make_token(sid="revoked")


def _auth(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


#: (method, path, token, raw body or None, content type)
REQUESTS: list[tuple[str, str, str | None, bytes | None, str]] = [
    ("POST", "/orders/a", TRADER, b'{"symbol": "XBT", "qty": 0.10000000000000000001}', "application/json"),
    ("POST", "/orders/a", None, b'{"symbol": "XBT", "qty": 1}', "application/json"),
    ("POST", "/orders/a", "not-a-token", b'{"symbol": "XBT", "qty": 1}', "application/json"),
    ("POST", "/orders/a", REVOKED, b'{"symbol": "XBT", "qty": 1}', "application/json"),
    ("POST", "/orders/a", VIEWER, b'{"symbol": "XBT", "qty": 1}', "application/json"),
    ("POST", "/orders/a", TRADER, b'{"symbol": "XBT", "qty": -1}', "application/json"),
    ("POST", "/orders/a", TRADER, b'{"symbol": "XBT", "qty": 1, "extra": 1}', "application/json"),
    ("POST", "/orders/a", TRADER, b'{"symbol": "XBT", "qty": 1', "application/json"),
    ("POST", "/orders/a", TRADER, b'[1, 2]', "application/json"),
    ("POST", "/orders/a", TRADER, b'{"symbol": "XBT", "qty": 1}', "text/plain"),
    ("POST", "/orders/a", TRADER, b'{"symbol": "XBT", "qty": "2.50"}', "application/json; charset=utf-8"),
    ("POST", "/orders/a", TRADER, b'{"symbol": "missing", "qty": 1}', "application/json"),
    ("POST", "/orders/a", TRADER, b'{"symbol": "decline", "qty": 1}', "application/json"),
    ("POST", "/orders/b", TRADER, b'{"symbol": "XBT", "qty": 3}', "application/json"),
    ("GET", "/items/XBT/USD", VIEWER, None, ""),
    ("GET", "/items/XBT/USD/fees", VIEWER, None, ""),
    ("GET", "/items/gone", TRADER, None, ""),
    ("GET", "/items/XBT/USD", None, None, ""),
]


def _send(client: TestClient, method: str, path: str, token: str | None, body: bytes | None, ctype: str) -> Any:
    headers = _auth(token)
    if body is not None:
        headers["Content-Type"] = ctype
    return client.request(method, path, content=body, headers=headers)


def test_hot_routes_answer_every_request_as_fastapi_does(server: fakeredis.FakeServer) -> None:
    plain_calls = {"fastapi": 0, "hot": 0, "fees": 0}
    hot_calls = {"fastapi": 0, "hot": 0, "fees": 0}
    with TestClient(build(plain_calls, hot=False, server=server)) as plain, \
            TestClient(build(hot_calls, hot=True, server=server)) as hot:
        for request in REQUESTS:
            for attempt in range(2):  # the first of a path goes through FastAPI, the second may be hot
                expected, got = _comparable(_send(plain, *request)), _comparable(_send(hot, *request))
                assert got == expected, (request, attempt)
        metrics = hot.get("/metrics").text
    assert plain_calls["hot"] == 0
    # happy paths answered hot from the second request of a path on; FastAPI kept the rest
    assert hot_calls["hot"] > 0 and hot_calls["fastapi"] < plain_calls["fastapi"]
    assert hot_calls["fees"] == plain_calls["fees"] == 2  # the shadowing route is never taken over
    assert 'route="/orders/{name}",service="hot-test",status="200"' in metrics
    assert 'route="/items/{name:path}",service="hot-test",status="200"' in metrics


def test_the_hot_path_is_taken_and_sees_revocation_on_the_next_request(server: fakeredis.FakeServer) -> None:
    calls = {"fastapi": 0, "hot": 0, "fees": 0}
    redis = fakeredis.FakeRedis(server=server)
    body = b'{"symbol": "XBT", "qty": 1}'
    with TestClient(build(calls, hot=True, server=server)) as client:
        first = _send(client, "POST", "/orders/z", TRADER, body, "application/json")
        assert first.status_code == 200 and calls == {"fastapi": 1, "hot": 0, "fees": 0}
        for _ in range(3):
            assert _send(client, "POST", "/orders/z", TRADER, body, "application/json").json() == first.json()
        assert calls == {"fastapi": 1, "hot": 3, "fees": 0}
        redis.delete(session_key("live"))
        revoked = _send(client, "POST", "/orders/z", TRADER, body, "application/json")
        assert revoked.status_code == 401 and "revoked" in revoked.json()["message"]
        assert calls["hot"] == 3  # refused before the handler


def test_errors_raised_by_a_hot_handler_are_the_apps_error_answers(server: fakeredis.FakeServer) -> None:
    calls = {"fastapi": 0, "hot": 0, "fees": 0}
    body = b'{"symbol": "crash", "qty": 1}'
    with TestClient(build(calls, hot=True, server=server), raise_server_exceptions=False) as client:
        # a path is learned from a request FastAPI answered without raising
        assert _send(client, "POST", "/orders/c", TRADER, b'{"symbol": "X", "qty": 1}', "application/json").is_success
        for _ in range(2):
            resp = _send(client, "POST", "/orders/c", TRADER, body, "application/json")
            assert resp.status_code == 500 and resp.json() == {"error": "internal", "message": "internal server error",
                                                               "detail": None}
        assert calls == {"fastapi": 1, "hot": 2, "fees": 0}
        assert 'route="/orders/{name}",service="hot-test",status="500"' in client.get("/metrics").text


def test_the_body_limit_holds_on_hot_routes(server: fakeredis.FakeServer) -> None:
    calls = {"fastapi": 0, "hot": 0, "fees": 0}
    small = b'{"symbol": "XBT", "qty": 1}'
    with TestClient(build(calls, hot=True, server=server, max_body=64)) as client:
        for _ in range(2):
            assert _send(client, "POST", "/orders/l", TRADER, small, "application/json").status_code == 200
        large = json.dumps({"symbol": "XBT", "qty": 1, "pad": "x" * 100}).encode()
        resp = _send(client, "POST", "/orders/l", TRADER, large, "application/json")
        assert resp.status_code == 413 and resp.json()["error"] == "request_entity_too_large"
        assert calls["hot"] == 1
