"""The universe-service app: kit wiring, start-up sync, cache lifecycle, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.metrics import counter, gauge
from sandbox.services.kit.settings import KitSettings
from sandbox.services.universe import routes_instruments, routes_market_caps, routes_sync
from sandbox.services.universe.cache import Snapshot
from sandbox.services.universe.catalog import Catalog
from sandbox.services.universe.migrations import MIGRATIONS
from sandbox.services.universe.models import SyncReport
from sandbox.services.universe.settings import UniverseSettings
from sandbox.services.universe.state import UniverseState
from sandbox.services.universe.sync import Syncer

log = logging.getLogger("sandbox.services.universe")


def _metrics(app: FastAPI) -> tuple[object, object, object, object, object]:
    syncs = counter(app, "universe_syncs_total", "Venue syncs by trigger and outcome.", ["trigger", "outcome"])
    changes = counter(
        app, "universe_sync_instruments_total", "Instruments seen by syncs, by change.", ["change"]
    )
    decisions = counter(app, "universe_decisions_total", "Approve / exclude decisions.", ["decision"])
    reloads = counter(app, "universe_cache_reloads_total", "Instrument cache reloads by reason.", ["reason"])
    instruments = gauge(app, "universe_instruments", "Listed instruments by approval state.", ["approval"])
    return syncs, changes, decisions, reloads, instruments


async def _start(app: FastAPI) -> None:
    settings: UniverseSettings = app.state.settings
    syncs, changes, decisions, reloads, instruments = _metrics(app)

    def on_reload(snapshot: Snapshot, reason: str) -> None:
        reloads.labels(reason).inc()  # type: ignore[attr-defined]
        for state, n in snapshot.counts().items():
            instruments.labels(state).set(n)  # type: ignore[attr-defined]

    def on_sync(report: SyncReport) -> None:
        syncs.labels(report.trigger, report.outcome).inc()  # type: ignore[attr-defined]
        for change in ("added", "updated", "unchanged", "delisted"):
            changes.labels(change).inc(getattr(report, change))  # type: ignore[attr-defined]
        changes.labels("skipped").inc(len(report.skipped))  # type: ignore[attr-defined]

    catalog = Catalog(app.state.db, settings.database_url, poll_s=settings.cache_poll_s, on_reload=on_reload)
    await catalog.start()
    syncer = Syncer(
        pool=app.state.db, catalog=catalog, http=app.state.http, url=settings.assetpairs_url,
        timeout_s=settings.sync_timeout_s, observe=on_sync,
    )
    app.state.universe = UniverseState(settings=settings, catalog=catalog, syncer=syncer, decisions=decisions)
    app.state.universe_retry = None
    if settings.sync_on_startup:
        try:
            await syncer.sync("startup", "startup")
        except ServiceError as exc:
            # Serve what the database holds and keep trying: the venue may start after us.
            log.warning("start-up sync failed; retrying in the background", extra={"error": exc.message})
            app.state.universe_retry = asyncio.create_task(
                syncer.retry_until_synced(settings.sync_retry_max_s), name="universe-sync-retry"
            )


async def _stop(app: FastAPI) -> None:
    task = getattr(app.state, "universe_retry", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    universe = getattr(app.state, "universe", None)
    if universe is not None:
        await universe.catalog.stop()


async def instrument_cache(app: FastAPI) -> str | None:
    """Readiness: the instrument snapshot has been loaded from the database."""
    universe = getattr(app.state, "universe", None)
    if universe is None or universe.snapshot.revision < 0:
        return "not loaded"
    return None


def create_app(settings: UniverseSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The universe-service app (settings from the environment when not given)."""
    settings = settings or UniverseSettings()  # type: ignore[call-arg]
    kit = kit or KitSettings()  # type: ignore[call-arg]
    app = create_service_app(
        kit=kit,
        title="universe-service",
        description="Tradable instruments synced from the venue's AssetPairs, with approvals and an audit trail.",
        routers=[routes_instruments.router, routes_sync.router, routes_market_caps.router],
        hot_routes=[routes_instruments.HOT],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        on_startup=[_start],
        on_shutdown=[_stop],
        readiness=[instrument_cache],
        settings=settings,
    )
    app.state.universe = None
    return app
