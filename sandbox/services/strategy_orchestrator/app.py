"""``create_app``: strategy-orchestrator on the shared kit."""

from __future__ import annotations

import logging

import asyncpg
from fastapi import FastAPI

from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.settings import KitSettings
from sandbox.services.strategy_orchestrator import routes_lifecycle, routes_strategies
from sandbox.services.strategy_orchestrator.cache import CacheSync, StrategyCache
from sandbox.services.strategy_orchestrator.clients import Peer
from sandbox.services.strategy_orchestrator.migrations import MIGRATIONS
from sandbox.services.strategy_orchestrator.settings import StrategySettings
from sandbox.services.strategy_orchestrator.state import ServiceState
from sandbox.services.strategy_orchestrator.telemetry import Metrics
from sandbox.services.strategy_orchestrator.workflows import Orchestrator, replica_id

log = logging.getLogger("sandbox.services.strategy_orchestrator")

DESCRIPTION = (
    "The strategy registry and lifecycle state machine. Strategies are registered with parameters, accounts, "
    "symbols and a capital target, and move only along valid transitions (registered, starting, running, paused, "
    "stopping, stopped, failed), each recorded with who, when and why. Starting a strategy asks capital-allocator "
    "for its capital; stopping one asks oms-service to cancel its open orders and capital-allocator to release its "
    "capital. These steps run as leased background workflows with every attempt recorded, resumed after a crash."
)


async def _start(app: FastAPI) -> None:
    state: ServiceState = app.state.strategy
    settings, kit = state.settings, app.state.kit
    pool: asyncpg.Pool = app.state.db

    async def connect() -> asyncpg.Connection:
        return await asyncpg.connect(settings.database_url, timeout=5)

    sync = CacheSync(pool, connect, state.cache, poll_s=settings.cache_poll_s)
    allocator = Peer("capital-allocator", "STRATEGY_CAPITAL_ALLOCATOR_URL", settings.capital_allocator_url,
                     kit, settings.call_timeout_s)
    oms = Peer("oms-service", "STRATEGY_OMS_URL", settings.oms_url, kit, settings.call_timeout_s)
    for peer in (allocator, oms):
        if peer.problem:
            log.warning("peer not configured: starting or stopping strategies will fail",
                        extra={"peer": peer.name, "problem": peer.problem})
    orchestrator = Orchestrator(
        pool, settings, owner=replica_id(kit.port), actor=kit.service_name,
        allocator=allocator, oms=oms, sync=sync, metrics=state.metrics,
    )
    try:
        await sync.start()
        await orchestrator.start()
    except BaseException:
        # The kit registers on_shutdown hooks only after every start-up hook succeeded.
        await orchestrator.stop()
        await sync.stop()
        for peer in (allocator, oms):
            await peer.aclose()
        raise
    state.sync, state.orchestrator = sync, orchestrator
    state.peers = (allocator, oms)


async def _stop(app: FastAPI) -> None:
    state: ServiceState = app.state.strategy
    orchestrator, sync = state.orchestrator, state.sync
    state.orchestrator = state.sync = None
    if orchestrator is not None:
        await orchestrator.stop()
    if sync is not None:
        await sync.stop()
    for peer in state.peers:
        await peer.aclose()
    state.peers = ()


async def strategy_cache(app: FastAPI) -> str | None:
    """Readiness: the registry is loaded and the workflows are being run."""
    state: ServiceState | None = getattr(app.state, "strategy", None)
    if state is None or state.orchestrator is None or not state.cache.loaded:
        return "starting"
    return None


def create_app(settings: StrategySettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The strategy-orchestrator app (settings from the environment when not given)."""
    settings = settings or StrategySettings()  # type: ignore[call-arg]  # from the environment
    kit = kit or KitSettings()  # type: ignore[call-arg]
    app = create_service_app(
        kit=kit,
        title="strategy-orchestrator",
        description=DESCRIPTION,
        routers=[routes_strategies.router, routes_lifecycle.router],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        on_startup=[_start],
        on_shutdown=[_stop],
        readiness=[strategy_cache],
        settings=settings,
    )
    metrics = Metrics.register(app)
    metrics.set_states({})
    app.state.strategy = ServiceState(settings=settings, metrics=metrics, cache=StrategyCache(metrics.set_states))
    return app
