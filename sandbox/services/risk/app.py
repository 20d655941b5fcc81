"""The risk-service app: three dataset databases, the fill consumer, the kill-switch broadcast.

The kit opens the compliance database (``app.state.db``) and NATS; the start-up
hook opens the ESG and diversification databases (each dataset in its own
database), applies their migrations, loads every dataset into memory, listens
for changes on all three, starts the Kafka fill consumer, the kill-switch
re-broadcast and the periodic safety reload.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
from fastapi import FastAPI

from sandbox.services.kit.app import create_service_app, retry_until
from sandbox.services.kit.auth import ServiceClient
from sandbox.services.kit.db import apply_migrations, create_pool
from sandbox.services.kit.settings import KitSettings
from sandbox.services.risk import (
    routes_accounts,
    routes_audit,
    routes_check,
    routes_compliance,
    routes_esg,
    routes_limits,
    routes_marks,
)
from sandbox.services.risk.capital import CapitalSource
from sandbox.services.risk.volatility import VolatilitySource
from sandbox.services.risk.consumer import FillConsumer
from sandbox.services.risk.killswitch import rebroadcast_loop
from sandbox.services.risk.migrations import COMPLIANCE, DIVERSIFICATION, ESG
from sandbox.services.risk.runtime import Counters, RiskRuntime
from sandbox.services.risk.settings import RiskSettings

log = logging.getLogger("sandbox.services.risk")

ROUTERS = [
    routes_check.router, routes_compliance.router, routes_esg.router, routes_limits.router,
    routes_accounts.router, routes_marks.router, routes_audit.router,
]


async def _open_pool(kit: KitSettings, name: str, dsn: str, migrations: Any) -> Any:
    pool = await retry_until(name, kit.startup_timeout_s, lambda: create_pool(dsn, max_size=4))
    try:
        await apply_migrations(pool, migrations)
    except BaseException:
        await pool.close()
        raise
    return pool


async def _cancel(task: asyncio.Task[Any] | None) -> None:
    if task is None:
        return
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass


def create_app(settings: RiskSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The risk-service app (settings from the environment when not given)."""
    settings = settings or RiskSettings()  # type: ignore[call-arg]
    kit = kit or KitSettings()  # type: ignore[call-arg]
    if settings.capital_allocator_url and not (kit.auth_url and kit.service_client_id and kit.service_client_secret):
        raise ValueError(
            "RISK_CAPITAL_ALLOCATOR_URL needs a service account: set AETHER_AUTH_URL, "
            "AETHER_SERVICE_CLIENT_ID and AETHER_SERVICE_CLIENT_SECRET"
        )

    async def start(app: FastAPI) -> None:
        """Open the other two databases, load the datasets, start the background work (undone on failure)."""
        try:
            await _start(app)
        except BaseException:
            await stop(app)
            raise

    async def _start(app: FastAPI) -> None:
        counters = Counters.register(app)
        app.state.risk_pools = []
        esg = await _open_pool(kit, "esg database", settings.esg_database_url, ESG)
        app.state.risk_pools.append(esg)
        diversification = await _open_pool(
            kit, "diversification database", settings.diversification_database_url, DIVERSIFICATION
        )
        app.state.risk_pools.append(diversification)
        capital = None
        if settings.capital_allocator_url:
            client = ServiceClient(kit, base_url=settings.capital_allocator_url, timeout=settings.capital_timeout_s)
            capital = CapitalSource(
                client, ttl_s=settings.capital_ttl_s, error_ttl_s=settings.capital_error_ttl_s,
                timeout_s=settings.capital_timeout_s, on_fetch=lambda outcome: counters.capital.labels(outcome).inc(),
            )
        volatility = None
        if settings.feature_server_url:
            volatility = VolatilitySource(
                httpx.AsyncClient(base_url=settings.feature_server_url, timeout=settings.feature_timeout_s),
                feature=settings.volatility_feature, ttl_s=settings.volatility_ttl_s,
                error_ttl_s=settings.volatility_error_ttl_s, timeout_s=settings.feature_timeout_s,
                on_fetch=lambda outcome: counters.volatility.labels(outcome).inc(),
            )
        runtime = RiskRuntime(
            settings=settings, compliance=app.state.db, esg=esg, diversification=diversification,
            counters=counters, nats=app.state.nats, capital=capital, volatility=volatility,
        )
        app.state.risk_runtime = runtime  # stopped by ``stop`` even if start fails below
        await runtime.start()
        stop_event = app.state.risk_stop = asyncio.Event()
        app.state.risk_tasks = [asyncio.create_task(runtime.periodic_reload(stop_event), name="risk-periodic-reload")]
        if app.state.nats is not None:
            app.state.risk_tasks.append(asyncio.create_task(
                rebroadcast_loop(
                    app.state.nats,
                    lambda: [s for s in runtime.state.kill_switches.values() if s.active],
                    settings.killswitch_rebroadcast_s, stop_event,
                    lambda ok: counters.broadcasts.labels("rebroadcast", "ok" if ok else "failed").inc(),
                ),
                name="risk-killswitch-rebroadcast",
            ))
        if settings.kafka_bootstrap:
            runtime.consumer = FillConsumer(
                bootstrap=settings.kafka_bootstrap, topic=settings.fills_topic, group_id=settings.consumer_group,
                handler=runtime.record_fills, on_rejected=lambda reason, n: counters.rejected.labels(reason).inc(n),
                loop=asyncio.get_running_loop(), session_timeout_ms=settings.kafka_session_timeout_ms,
                partitions=settings.fills_topic_partitions, client_id=kit.service_name,
            )
            runtime.consumer.start()
        app.state.risk = runtime
        state = runtime.state
        log.info(
            "risk runtime ready",
            extra={
                "restricted": len(state.restricted.entries), "esg_exclusions": len(state.esg_entries),
                "account_limits": len(state.limits.accounts), "position_limits": len(state.limits.positions),
                "kill_switches": len(state.kill_switches), "accounts_with_positions": len(state.positions),
                "fills_topic": settings.fills_topic if settings.kafka_bootstrap else None,
                "capital_allocator": settings.capital_allocator_url, "nats": app.state.nats is not None,
                "feature_server": settings.feature_server_url,
            },
        )

    async def stop(app: FastAPI) -> None:
        """Stop the background work and close the two extra pools."""
        app.state.risk = None
        stop_event = getattr(app.state, "risk_stop", None)
        if stop_event is not None:
            stop_event.set()
        for task in getattr(app.state, "risk_tasks", []):
            await _cancel(task)
        runtime: RiskRuntime | None = getattr(app.state, "risk_runtime", None)
        if runtime is not None:
            await runtime.stop()
        for pool in getattr(app.state, "risk_pools", []):
            await pool.close()

    async def datasets(app: FastAPI) -> str | None:
        """Readiness: the ESG and diversification databases answer and every change listener is connected."""
        runtime: RiskRuntime | None = getattr(app.state, "risk", None)
        if runtime is None:
            return "starting"
        for name in ("esg", "diversification"):
            await runtime.pools[name].fetchval("SELECT 1")
        return runtime.listeners_health()

    async def fill_consumer(app: FastAPI) -> str | None:
        """Readiness: the Kafka fill consumer joined (absent when Kafka is not configured)."""
        runtime: RiskRuntime | None = getattr(app.state, "risk", None)
        if runtime is None or runtime.consumer is None:
            return None
        return runtime.consumer.health()

    return create_service_app(
        kit=kit,
        title="risk-service",
        description="Pre-trade risk checks, positions and P&L from fills, per-account kill switch.",
        routers=ROUTERS,
        hot_routes=[routes_check.HOT],
        database_url=settings.compliance_database_url,
        migrations=COMPLIANCE,
        nats_url=settings.nats_url,
        on_startup=[start],
        on_shutdown=[stop],
        readiness=[datasets, fill_consumer] if settings.kafka_bootstrap else [datasets],
        settings=settings,
    )
