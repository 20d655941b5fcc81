"""Metrics: route templating, bounded labels, the per-app registry."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from sandbox.services.kit import KitSettings, create_service_app
from sandbox.services.kit.metrics import UNMATCHED, counter, method_label, route_template


class _Route:
    def __init__(self, path: str) -> None:
        self.path = path


def test_route_template_uses_the_matched_route_not_the_raw_path() -> None:
    assert route_template({"route": _Route("/v1/users/{username}"), "path": "/v1/users/alice"}) == "/v1/users/{username}"


def test_unmatched_requests_share_one_label() -> None:
    assert route_template({"path": "/random/123"}) == UNMATCHED


def test_mount_prefix_is_kept() -> None:
    scope = {"route": _Route("/{path}"), "root_path": "/static", "app_root_path": ""}
    assert route_template(scope) == "/static/{path}"


@pytest.mark.parametrize(("method", "label"), [("GET", "GET"), ("PATCH", "PATCH"), ("PROPFIND", "OTHER"), ("get", "OTHER")])
def test_unknown_methods_are_bucketed(method: str, label: str) -> None:
    assert method_label(method) == label


@pytest.fixture
def app() -> FastAPI:
    router = APIRouter()

    @router.get("/items/{item_id}")
    async def item(item_id: int) -> dict:
        return {"id": item_id}

    kit = KitSettings(service_name="metrics-test", session_redis_url="redis://127.0.0.1:1/0")
    return create_service_app(kit=kit, title="t", routers=[router])


def _samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + "{")]


def test_metrics_endpoint_labels_by_template(app: FastAPI) -> None:
    with TestClient(app) as client:
        for i in range(3):
            assert client.get(f"/items/{i}").status_code == 200
        assert client.get("/items/x").status_code == 422
        assert client.get("/nope/42").status_code == 404
        body = client.get("/metrics")
    assert body.status_code == 200
    assert body.headers["content-type"].startswith("text/plain")
    requests = _samples(body.text, "http_requests_total")
    assert 'http_requests_total{method="GET",route="/items/{item_id}",service="metrics-test",status="200"} 3.0' in requests
    assert 'http_requests_total{method="GET",route="/items/{item_id}",service="metrics-test",status="422"} 1.0' in requests
    assert f'http_requests_total{{method="GET",route="{UNMATCHED}",service="metrics-test",status="404"}} 1.0' in requests
    assert not any("/items/0" in line or "/nope/42" in line for line in requests)
    buckets = _samples(body.text, "http_request_duration_seconds_count")
    assert 'http_request_duration_seconds_count{method="GET",route="/items/{item_id}",service="metrics-test"} 4.0' in buckets


def test_service_counters_live_in_the_app_registry(app: FastAPI) -> None:
    c = counter(app, "widgets_made_total", "Widgets made.", ["colour"])
    assert counter(app, "widgets_made_total", "Widgets made.", ["colour"]) is c
    c.labels("red").inc(2)
    with TestClient(app) as client:
        text = client.get("/metrics").text
    assert 'widgets_made_total{colour="red"} 2.0' in text


def test_registries_are_per_app() -> None:
    kit = KitSettings(service_name="a", session_redis_url="redis://127.0.0.1:1/0")
    one = create_service_app(kit=kit, title="a", routers=[])
    two = create_service_app(kit=kit, title="b", routers=[])
    # Same name in two apps: no "duplicated timeseries" error, separate values.
    counter(one, "x_total", "x").inc()
    counter(two, "x_total", "x")
    with TestClient(two) as client:
        assert "x_total 0.0" in client.get("/metrics").text
