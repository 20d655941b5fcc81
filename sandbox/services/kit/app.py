"""``create_service_app``: the one way a service builds its FastAPI app.

The lifespan opens (and closes in reverse) the clients the service asked for:
asyncpg pool + migrations, Redis, the session Redis, NATS, a Kafka producer,
the JWKS token verifier, then the service's ``on_startup`` hooks.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, TypeVar

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter, FastAPI
from fastapi.responses import Response

from sandbox.services.kit.auth import TokenVerifier, close_session_checker
from sandbox.services.kit.db import (
    TIMESCALE_ABSENT,
    TIMESCALE_PRESENT,
    Migration,
    apply_migrations,
    create_pool,
    timescaledb_available,
)
from sandbox.services.kit.errors import install_error_handlers
from sandbox.services.kit.health import ReadinessCheck, health_router
from sandbox.services.kit.kafka import KafkaProducer
from sandbox.services.kit.logs import configure_logging
from sandbox.services.kit.metrics import AppMetrics
from sandbox.services.kit.hot import HotRoute, HotRoutes
from sandbox.services.kit.middleware import RequestContextMiddleware
from sandbox.services.kit.settings import KitSettings
from sandbox.services.kit.tracing import HTTPX_HOOKS, build_tracing

log = logging.getLogger("sandbox.services.kit")

Hook = Callable[[FastAPI], Awaitable[None]]
_CLIENTS = ("db", "redis", "sessions", "nats", "kafka", "verifier", "timescaledb", "http")
T = TypeVar("T")
#: ``FastAPI(telemetry=...)``: no native spans, metrics or log records (the kit has its own).
NATIVE_TELEMETRY_OFF: Any = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


async def retry_until(what: str, timeout_s: float, attempt: Callable[[], Awaitable[T]]) -> T:
    """Call ``attempt`` until it succeeds or ``timeout_s`` passes (then re-raise its last error)."""
    deadline = time.monotonic() + timeout_s
    delay = 0.1
    while True:
        try:
            return await attempt()
        except Exception as exc:
            if time.monotonic() + delay > deadline:
                log.error("dependency unreachable at start-up", extra={"dependency": what, "error": str(exc)})
                raise
            log.info("waiting for dependency", extra={"dependency": what, "error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)


def redis_client(url: str) -> aioredis.Redis:
    """A Redis client (string replies, short timeouts); connects lazily."""
    return aioredis.from_url(
        url, decode_responses=True, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )


def create_service_app(
    *,
    kit: KitSettings,
    title: str,
    routers: Sequence[APIRouter],
    database_url: str | None = None,
    migrations: Sequence[Migration] = (),
    redis_url: str | None = None,
    nats_url: str | None = None,
    kafka_bootstrap: str | None = None,
    on_startup: Sequence[Hook] = (),
    on_shutdown: Sequence[Hook] = (),
    readiness: Sequence[ReadinessCheck] = (),
    settings: Any = None,
    version: str = "0.1.0",
    description: str = "",
    hot_routes: Sequence[HotRoute] = (),
) -> FastAPI:
    """A FastAPI app with the kit's lifespan, middlewares, error bodies, ``/healthz`` and ``/metrics``.

    ``settings`` (extension) is stored as ``app.state.settings`` for the ``AppSettings`` dependency.
    ``hot_routes`` (extension): endpoints whose happy path skips FastAPI's per-request machinery
    (:mod:`sandbox.services.kit.hot`); each must also be a route of ``routers``.
    """
    configure_logging(kit.service_name, kit.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            timeout = kit.startup_timeout_s
            if database_url:
                pool = await retry_until("postgres", timeout, lambda: create_pool(database_url))
                stack.push_async_callback(pool.close)
                app.state.db = pool
                if migrations:
                    await apply_migrations(pool, migrations)
                async with pool.acquire() as conn:
                    app.state.timescaledb = TIMESCALE_PRESENT if await timescaledb_available(conn) else TIMESCALE_ABSENT
            if redis_url:
                app.state.redis = redis_client(redis_url)
                stack.push_async_callback(app.state.redis.aclose)
            app.state.sessions = redis_client(kit.session_redis_url)
            stack.push_async_callback(app.state.sessions.aclose)
            stack.callback(close_session_checker, app.state)
            if nats_url:
                import nats

                async def connect_nats() -> Any:
                    return await nats.connect(
                        nats_url, name=kit.service_name, connect_timeout=2,
                        allow_reconnect=True, max_reconnect_attempts=-1,
                    )

                nc = await retry_until("nats", timeout, connect_nats)
                stack.push_async_callback(nc.close)
                app.state.nats = nc
            if kafka_bootstrap:
                producer = KafkaProducer(kafka_bootstrap, client_id=kit.service_name)
                stack.push_async_callback(producer.close)
                app.state.kafka = producer
            if app.state.tracing is not None:
                stack.callback(app.state.tracing.shutdown)
            http = httpx.AsyncClient(timeout=3.0, event_hooks=dict(HTTPX_HOOKS))
            stack.push_async_callback(http.aclose)
            app.state.http = http
            if kit.auth_url:
                app.state.verifier = TokenVerifier(
                    f"{kit.auth_url.rstrip('/')}/.well-known/jwks.json", cache_size=kit.token_cache_size, http=http
                )
            for hook in on_startup:
                await hook(app)
            for hook in reversed(on_shutdown):
                stack.push_async_callback(hook, app)
            app.state.started = True
            log.info("service started", extra={"host": kit.host, "port": kit.port})
            try:
                yield
            finally:
                app.state.started = False
                log.info("service stopping")
        # Clients are closed: forget them so nothing uses (or keeps alive) a closed client.
        for name in _CLIENTS:
            setattr(app.state, name, None)

    # FastAPI's own OpenTelemetry hooks stay off: the kit traces with its per-app provider
    # (sandbox.services.kit.tracing), and the native check would otherwise run on every request.
    app = FastAPI(title=title, version=version, description=description, lifespan=lifespan,
                  telemetry=NATIVE_TELEMETRY_OFF)
    app.state.kit = kit
    app.state.settings = settings
    app.state.metrics = AppMetrics(kit.service_name)
    app.state.tracing = build_tracing(kit.service_name, kit.otlp_endpoint, version=version)
    for name in _CLIENTS:
        setattr(app.state, name, None)
    app.state.started = False
    install_error_handlers(app)
    app.include_router(health_router(readiness))

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = app.state.metrics.render()
        return Response(body, media_type=content_type)

    for router in routers:
        app.include_router(router)
    # One layer (each costs CPU on every request): request id, metrics and traces see every response,
    # 413s included; the body limit and the hot routes sit inside them.
    app.state.hot_routes = HotRoutes(hot_routes, kit.max_body_bytes) if hot_routes else None
    app.add_middleware(RequestContextMiddleware, metrics=app.state.metrics, tracing=app.state.tracing,
                       max_bytes=kit.max_body_bytes, hot=app.state.hot_routes)
    return app
