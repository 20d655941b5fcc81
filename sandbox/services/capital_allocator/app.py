"""``create_app``: capital-allocator on the shared kit."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from sandbox.services.capital_allocator import (
    routes_allocations,
    routes_portfolio,
    routes_reservations,
    routes_strategies,
)
from sandbox.services.capital_allocator.database import Database
from sandbox.services.capital_allocator.settings import CapitalAllocatorSettings
from sandbox.services.capital_allocator.state import AllocatorState, Metrics
from sandbox.services.capital_allocator.sync import CacheSync
from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.settings import KitSettings

log = logging.getLogger("sandbox.services.capital_allocator")

DESCRIPTION = (
    "Capital per strategy from a portfolio NAV, a cash buffer and per-strategy targets (weight, capital and "
    "weight bounds). Allocation runs are deterministic (Decimal; weights normalised over active strategies; "
    "iterative clamping with redistribution; never beyond NAV minus the buffer) and kept in an append-only "
    "history. The OMS reserves capital for open orders; available = allocated - reserved, served from memory."
)


async def _start(app: FastAPI) -> None:
    state: AllocatorState = app.state.capital
    pool = await state.database.open(app)
    sync = CacheSync(
        pool, state.database.connect, state.cache, poll_s=state.settings.cache_poll_s,
        on_reload=lambda reason: state.metrics.reloads.labels(reason).inc(),
    )
    try:
        await sync.start()
    except BaseException:
        # The kit registers shutdown hooks only after every start-up hook succeeded.
        await sync.stop()
        await pool.close()
        app.state.db = None
        raise
    state.sync, state.pool = sync, pool
    state.bind_gauges()


async def _stop(app: FastAPI) -> None:
    state: AllocatorState = app.state.capital
    if state.sync is not None:
        await state.sync.stop()
        state.sync, state.pool = None, None
    pool = getattr(app.state, "db", None)
    if pool is not None:
        await pool.close()


async def capital_cache(app: FastAPI) -> str | None:
    """Readiness: the cache has been loaded from the database."""
    state: AllocatorState | None = getattr(app.state, "capital", None)
    if state is None or not state.cache.loaded:
        return "not loaded"
    return None


def create_app(settings: CapitalAllocatorSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The capital-allocator app (settings from the environment when not given)."""
    settings = settings or CapitalAllocatorSettings()  # type: ignore[call-arg]  # from the environment
    kit = kit or KitSettings()  # type: ignore[call-arg]
    app = create_service_app(
        kit=kit,
        title="capital-allocator",
        description=DESCRIPTION,
        # The pool is opened by _start (TLS settings need asyncpg's ssl argument, see database.py).
        routers=[routes_portfolio.router, routes_strategies.router, routes_reservations.router,
                 routes_allocations.router],
        on_startup=[_start],
        on_shutdown=[_stop],
        readiness=[capital_cache],
        settings=settings,
    )
    app.state.capital = AllocatorState(
        settings=settings, database=Database(settings.database_url, settings.db_ssl()), metrics=Metrics.register(app)
    )
    return app
