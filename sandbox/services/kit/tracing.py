"""OpenTelemetry tracing for kit services: server spans, context propagation, OTLP/HTTP export.

Enabled only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``KitSettings.otlp_endpoint``);
otherwise :func:`build_tracing` returns ``None`` and the request path pays one
``is None`` test. When enabled:

* every HTTP request but ``/healthz`` and ``/metrics`` gets a SERVER span named
  ``METHOD /route/{template}``, continuing the caller's W3C ``traceparent``;
* outgoing calls carry the current context: :func:`inject_headers` for any
  header dict, :data:`HTTPX_HOOKS` for ``httpx`` clients (the kit's shared
  client and :class:`~sandbox.services.kit.auth.ServiceClient` use it), so one
  order's trace crosses auth, OMS, policy, risk and fees;
* spans go in batches to ``{endpoint}/v1/traces`` (OTLP protobuf over HTTP).

The provider is per app, not the process-global one, so tests can build many
apps in one process; propagation only needs the current context.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject

log = logging.getLogger("sandbox.services.kit.tracing")

#: Paths that never get a span (probes and scrapes would drown the traces).
EXCLUDED_PATHS = frozenset({"/healthz", "/metrics"})


@dataclass
class Tracing:
    """One app's tracer and the provider that exports its spans."""

    tracer: trace.Tracer
    provider: Any
    endpoint: str

    def shutdown(self) -> None:
        """Flush pending spans and stop the exporter."""
        self.provider.shutdown()


def build_tracing(service_name: str, endpoint: str | None, *, version: str = "0.1.0") -> Tracing | None:
    """A tracer exporting to ``endpoint`` (the OTLP/HTTP base URL), or ``None`` when it is unset."""
    if not endpoint:
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    base = endpoint.rstrip("/")
    provider = TracerProvider(resource=Resource.create({"service.name": service_name, "service.version": version}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{base}/v1/traces", timeout=5)))
    log.info("tracing enabled", extra={"otlp_endpoint": base})
    return Tracing(provider.get_tracer("sandbox.services.kit"), provider, base)


def headers_carrier(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The ASGI headers a propagator reads (only the trace ones, decoded)."""
    out: dict[str, str] = {}
    for name, value in raw:
        if name in (b"traceparent", b"tracestate", b"baggage"):
            out[name.decode("latin-1")] = value.decode("latin-1")
    return out


def extract_context(raw: list[tuple[bytes, bytes]]) -> otel_context.Context | None:
    """The caller's context from ASGI headers (``None`` when it sent none)."""
    carrier = headers_carrier(raw)
    return extract(carrier) if carrier else None


def inject_headers(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add ``traceparent`` (and ``tracestate``) for the current span to ``headers``; a no-op without one."""
    if trace.get_current_span().get_span_context().is_valid:
        inject(headers)
    return headers


async def _httpx_inject(request: Any) -> None:
    if trace.get_current_span().get_span_context().is_valid:
        carrier: dict[str, str] = {}
        inject(carrier)
        request.headers.update(carrier)


#: ``httpx.AsyncClient(event_hooks=HTTPX_HOOKS)``: outgoing requests carry the current trace context.
HTTPX_HOOKS: Mapping[str, list[Any]] = {"request": [_httpx_inject]}


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, or ``None`` outside any span."""
    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")
