"""Uniform error bodies, body limit, request ids and health over a kit app with no servers."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import asyncpg
import pytest
from fastapi import APIRouter, FastAPI, HTTPException
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from sandbox.services.kit import KitSettings, ServiceError, create_service_app
from sandbox.services.kit.logs import JsonFormatter, request_id_var

LIMIT = 256


class Item(BaseModel):
    name: str = Field(max_length=1000)
    qty: int = Field(ge=0)


def _app(**extra: object) -> FastAPI:
    router = APIRouter()

    @router.post("/items/{item_id}", status_code=201)
    async def create(item_id: int, item: Item) -> dict:
        return {"id": item_id, **item.model_dump()}

    @router.get("/domain")
    async def domain() -> dict:
        raise ServiceError(409, "version_conflict", "stale version", detail={"current": 3}, headers={"ETag": '"3"'})

    @router.get("/http")
    async def http() -> dict:
        raise HTTPException(418, "short and stout")

    @router.get("/crash")
    async def crash() -> dict:
        raise RuntimeError("secret internals")

    @router.get("/encode")
    async def encode() -> dict:
        "\ud800".encode()  # what a DB or Redis client does with unencodable text
        return {}

    @router.get("/pg/{kind}")
    async def pg(kind: str) -> dict:
        raise {
            "data": asyncpg.exceptions.CharacterNotInRepertoireError("invalid byte sequence"),
            "unique": asyncpg.exceptions.UniqueViolationError("duplicate key"),
            "fk": asyncpg.exceptions.ForeignKeyViolationError("fk"),
            "serial": asyncpg.exceptions.SerializationError("serialize"),
            "other": asyncpg.exceptions.InsufficientPrivilegeError("no"),
        }[kind]

    kit = KitSettings(service_name="errors-test", session_redis_url="redis://127.0.0.1:1/0", max_body_bytes=LIMIT)
    return create_service_app(kit=kit, title="errors", routers=[router], **extra)  # type: ignore[arg-type]


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(_app(), raise_server_exceptions=False) as c:
        yield c


def _is_error_body(body: dict, code: str) -> None:
    assert set(body) == {"error", "message", "detail"}
    assert body["error"] == code
    assert isinstance(body["message"], str) and body["message"]


def test_success_passes_through(client: TestClient) -> None:
    resp = client.post("/items/7", json={"name": "a", "qty": 1})
    assert resp.status_code == 201
    assert resp.json() == {"id": 7, "name": "a", "qty": 1}


def test_validation_errors_are_422_with_locations_and_no_echoed_input(client: TestClient) -> None:
    resp = client.post("/items/x", json={"name": "secret-value" * 3, "qty": -1})
    assert resp.status_code == 422
    body = resp.json()
    _is_error_body(body, "validation_error")
    locs = {tuple(e["loc"]) for e in body["detail"]}
    assert ("path", "item_id") in locs and ("body", "qty") in locs
    assert "secret-value" not in resp.text


@pytest.mark.parametrize("payload", [b"{not json", b"[1,2]", b"null", b"\xff\xfe"])
def test_malformed_bodies_are_422(client: TestClient, payload: bytes) -> None:
    resp = client.post("/items/1", content=payload, headers={"content-type": "application/json"})
    assert resp.status_code == 422
    _is_error_body(resp.json(), "validation_error")


def test_service_error_keeps_status_code_detail_and_headers(client: TestClient) -> None:
    resp = client.get("/domain")
    assert resp.status_code == 409
    assert resp.headers["etag"] == '"3"'
    assert resp.json() == {"error": "version_conflict", "message": "stale version", "detail": {"current": 3}}


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [("GET", "/nowhere", 404, "not_found"), ("DELETE", "/domain", 405, "method_not_allowed"), ("GET", "/http", 418, "im_a_teapot")],
)
def test_http_errors_share_the_shape(client: TestClient, method: str, path: str, status: int, code: str) -> None:
    resp = client.request(method, path)
    assert resp.status_code == status
    _is_error_body(resp.json(), code)


def test_unhandled_errors_are_500_without_internals(client: TestClient) -> None:
    resp = client.get("/crash")
    assert resp.status_code == 500
    _is_error_body(resp.json(), "internal")
    assert "secret internals" not in resp.text


@pytest.mark.parametrize(
    ("kind", "status", "code"),
    [("data", 422, "invalid_data"), ("unique", 409, "conflict"), ("fk", 409, "constraint_violation"),
     ("serial", 409, "retry"), ("other", 503, "database_unavailable")],
)
def test_database_errors_caused_by_input_are_not_500(client: TestClient, kind: str, status: int, code: str) -> None:
    resp = client.get(f"/pg/{kind}")
    assert resp.status_code == status
    _is_error_body(resp.json(), code)


def test_unencodable_text_is_422_not_500(client: TestClient) -> None:
    # pydantic already refuses lone surrogates in bodies ...
    resp = client.post("/items/1", content=b'{"name": "\\ud800", "qty": 1}', headers={"content-type": "application/json"})
    assert resp.status_code == 422
    # ... and the kit's safety net catches any that reach an encoder another way
    resp = client.get("/encode")
    assert resp.status_code == 422
    _is_error_body(resp.json(), "invalid_text")


def test_declared_oversize_body_is_413_before_reading(client: TestClient) -> None:
    resp = client.post("/items/1", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    assert resp.status_code == 413
    _is_error_body(resp.json(), "request_entity_too_large")


def test_streamed_oversize_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(10):
            yield b"a" * 64
        yield b'", "qty": 1}'

    resp = client.post("/items/1", content=chunks(), headers={"content-type": "application/json"})
    assert resp.status_code == 413
    _is_error_body(resp.json(), "request_entity_too_large")


def test_body_at_the_limit_is_accepted(client: TestClient) -> None:
    body = json.dumps({"name": "", "qty": 1}).encode()
    body = body.replace(b'""', b'"' + b"a" * (LIMIT - len(body)) + b'"')
    assert len(body) == LIMIT
    assert client.post("/items/1", content=body, headers={"content-type": "application/json"}).status_code == 201


def test_bad_content_length_is_400(client: TestClient) -> None:
    resp = client.post("/items/1", content=b"{}", headers={"content-type": "application/json", "content-length": "abc"})
    assert resp.status_code in (400, 422)


def test_request_id_is_echoed_or_generated(client: TestClient) -> None:
    assert client.get("/nowhere", headers={"X-Request-ID": "req-42.a:b"}).headers["x-request-id"] == "req-42.a:b"
    generated = client.get("/nowhere").headers["x-request-id"]
    assert len(generated) == 32
    unsafe = client.get("/nowhere", headers={"X-Request-ID": "x" * 200}).headers["x-request-id"]
    assert unsafe != "x" * 200


def test_liveness_needs_no_dependency_and_readiness_reports_them(client: TestClient) -> None:
    assert client.get("/healthz?probe=live").json() == {"status": "ok"}
    ready = client.get("/healthz")
    assert ready.status_code == 503  # the session redis (port 1) does not answer
    assert ready.json()["status"] == "unavailable"
    assert ready.json()["checks"]["sessions"].startswith("error")
    assert client.get("/healthz?probe=maybe").status_code == 422


def test_custom_readiness_checks() -> None:
    async def sessions_ok(app: FastAPI) -> None:
        app.state.sessions = None  # pretend there is no session redis to check

    async def cache_warm(app: FastAPI) -> str | None:
        return None

    async def upstream(app: FastAPI) -> str | None:
        return "upstream answered 502"

    async def ok_string(app: FastAPI) -> str | None:
        return "ok"

    app = _app(on_startup=[sessions_ok], readiness=[cache_warm, ok_string])
    with TestClient(app) as c:
        resp = c.get("/healthz")
        assert resp.status_code == 200, resp.text
        assert resp.json() == {"status": "ok", "checks": {"cache_warm": "ok", "ok_string": "ok"}}
    app = _app(on_startup=[sessions_ok], readiness=[cache_warm, upstream])
    with TestClient(app) as c:
        resp = c.get("/healthz")
        assert resp.status_code == 503
        assert resp.json()["checks"]["upstream"] == "upstream answered 502"


def test_openapi_is_served() -> None:
    with TestClient(_app()) as c:
        paths = c.get("/openapi.json").json()["paths"]
        assert "/items/{item_id}" in paths and "/healthz" in paths
        assert c.get("/docs").status_code == 200


def test_json_log_lines_carry_service_request_id_and_extras() -> None:
    formatter = JsonFormatter("svc")
    token = request_id_var.set("rid-1")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        record.user = "alice"
        line = json.loads(formatter.format(record))
    finally:
        request_id_var.reset(token)
    assert line["service"] == "svc" and line["request_id"] == "rid-1"
    assert line["msg"] == "hello world" and line["level"] == "info" and line["user"] == "alice"
    assert line["ts"].endswith("Z")
