"""A minimal OTLP/HTTP trace receiver: ``POST /v1/traces`` (protobuf, optionally gzip) kept in memory.

Where no Tempo runs (the local runtime: no package provides it) this is enough
to see what the services export, and the tests use it to check one order's
trace. ``GET /echo`` answers the request's headers as JSON (to check what an
outgoing call carries). Loopback only; a context manager.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from sandbox.observability.background_http import BackgroundHTTPServer, QuietHandler


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as received."""

    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    kind: int
    attributes: dict[str, Any]


def _value(v: Any) -> Any:
    field = v.WhichOneof("value")
    return getattr(v, field) if field else None


def decode(body: bytes) -> list[ReceivedSpan]:
    """The spans of one ``ExportTraceServiceRequest``."""
    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for rs in request.resource_spans:
        attrs = {a.key: _value(a.value) for a in rs.resource.attributes}
        service = str(attrs.get("service.name", ""))
        for ss in rs.scope_spans:
            for s in ss.spans:
                spans.append(ReceivedSpan(
                    service, s.name, s.trace_id.hex(), s.span_id.hex(), s.parent_span_id.hex(), s.kind,
                    {a.key: _value(a.value) for a in s.attributes},
                ))
    return spans


class OtlpSink(BackgroundHTTPServer):
    """Receives spans on ``http://127.0.0.1:PORT`` until stopped."""

    poll_interval = 0.1

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self._lock = threading.Lock()
        sink = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server API
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                try:
                    spans = decode(body)
                except Exception:  # noqa: BLE001 - a malformed export is answered 400
                    self.send_error(400)
                    return
                with sink._lock:
                    sink.spans.extend(spans)
                    sink.requests += 1
                self.reply(200, "application/x-protobuf", ExportTraceServiceResponse().SerializeToString())

            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/echo":
                    self.send_error(404)
                    return
                self.reply(200, "application/json", json.dumps({k.lower(): v for k, v in self.headers.items()}).encode())

        super().__init__(Handler, port, host)

    @property
    def url(self) -> str:
        """The base URL (the value for ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def trace(self, trace_id: str) -> list[ReceivedSpan]:
        """The spans received so far for ``trace_id``."""
        with self._lock:
            return [s for s in self.spans if s.trace_id == trace_id]

    def wait_for(self, trace_id: str, services: set[str], timeout: float = 15.0) -> list[ReceivedSpan]:
        """The trace's spans once every one of ``services`` contributed one, or what arrived by ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.trace(trace_id)
            if services <= {s.service for s in spans} or time.monotonic() > deadline:
                return spans
            time.sleep(0.1)

