"""The kit's tracing: server spans continuing the caller's trace, propagation on outgoing calls, trace ids in
logs, probes left out, and nothing at all when OTEL_EXPORTER_OTLP_ENDPOINT is unset.

Spans are exported for real (OTLP/HTTP protobuf) to an in-process receiver on loopback and decoded.
"""

from __future__ import annotations

import io
import json
import logging

import pytest
from fastapi import APIRouter, Request
from fastapi.testclient import TestClient

from sandbox.observability.otlp_sink import OtlpSink
from sandbox.services.kit import KitSettings, create_service_app
from sandbox.services.kit.tracing import inject_headers

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT}-01"


def make_app(endpoint: str | None, echo_url: str = ""):
    router = APIRouter()

    @router.get("/v1/items/{item_id}")
    async def item(item_id: str, request: Request) -> dict:
        logging.getLogger("test.items").info("serving item", extra={"item": item_id})
        outgoing = inject_headers({})
        echoed = (await request.app.state.http.get(echo_url)).json() if echo_url else {}
        return {"outgoing": outgoing, "echoed": echoed}

    @router.get("/v1/boom")
    async def boom() -> dict:
        raise RuntimeError("boom")

    kit = KitSettings(service_name="traced-service", session_redis_url="redis://127.0.0.1:1/0", otlp_endpoint=endpoint)
    return create_service_app(kit=kit, title="traced", routers=[router])


@pytest.fixture
def sink():
    with OtlpSink() as s:
        yield s


def test_a_request_continues_the_callers_trace_and_propagates_it(sink: OtlpSink) -> None:
    app = make_app(sink.url, echo_url=f"{sink.url}/echo")
    with TestClient(app, raise_server_exceptions=False) as client:
        resp = client.get("/v1/items/42", headers={"traceparent": TRACEPARENT})
        assert resp.status_code == 200
        body = resp.json()
        assert client.get("/v1/boom").status_code == 500
        for path in ("/healthz?probe=live", "/metrics"):
            assert client.get(path).status_code == 200
    # The lifespan's end flushed the exporter.
    spans = sink.spans
    served = [s for s in spans if s.name == "GET /v1/items/{item_id}"]
    assert len(served) == 1, [s.name for s in spans]
    span = served[0]
    assert (span.service, span.trace_id, span.parent_span_id) == ("traced-service", TRACE_ID, PARENT)
    assert span.kind == 2  # SERVER
    assert span.attributes["http.route"] == "/v1/items/{item_id}"
    assert span.attributes["http.response.status_code"] == 200
    # The current context goes out on explicit headers and on the kit's httpx client.
    for carried in (body["outgoing"]["traceparent"], body["echoed"]["traceparent"]):
        version, trace_id, span_id, _ = carried.split("-")
        assert (trace_id, span_id) == (TRACE_ID, span.span_id)
    # A request without a caller's context starts its own trace; 5xx marks the span as an error.
    [boom] = [s for s in spans if s.name == "GET /v1/boom"]
    assert boom.trace_id != TRACE_ID and boom.parent_span_id == ""
    assert boom.attributes["http.response.status_code"] == 500
    # Probes and scrapes are not traced.
    assert not [s for s in spans if "healthz" in s.name or "metrics" in s.name]


def test_log_lines_inside_a_traced_request_carry_the_trace_id(sink: OtlpSink) -> None:
    app = make_app(sink.url)
    stream = io.StringIO()
    root = logging.getLogger()
    [kit_handler] = [h for h in root.handlers if getattr(h, "_aether_kit", False)]
    kit_handler.setStream(stream)
    with TestClient(app) as client:
        client.get("/v1/items/7", headers={"traceparent": TRACEPARENT})
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    [served] = [line for line in lines if line["msg"] == "serving item"]
    assert served["trace_id"] == TRACE_ID and len(served["span_id"]) == 16
    assert served["service"] == "traced-service" and served["item"] == "7"
    # Outside a request: no trace fields.
    assert all("trace_id" not in line for line in lines if line["msg"] == "service started")


def test_tracing_is_off_without_an_endpoint(sink: OtlpSink) -> None:
    app = make_app(None, echo_url=f"{sink.url}/echo")
    assert app.state.tracing is None
    with TestClient(app) as client:
        body = client.get("/v1/items/1", headers={"traceparent": TRACEPARENT}).json()
    assert body["outgoing"] == {} and "traceparent" not in body["echoed"]
    assert sink.requests == 0
