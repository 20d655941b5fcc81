"""config-service: namespaced, versioned configuration with optimistic concurrency and change notifications."""

from __future__ import annotations

from fastapi import FastAPI

from sandbox.services.config import routes_config, routes_history, routes_namespaces
from sandbox.services.config.migrations import MIGRATIONS
from sandbox.services.config.notify import Notifier
from sandbox.services.config.service import ConfigService
from sandbox.services.config.settings import ConfigSettings
from sandbox.services.config.telemetry import create_metrics
from sandbox.services.kit import KitSettings, create_service_app

DESCRIPTION = (
    "Namespaced, versioned key/value configuration (JSON values). Writes name the version they expect "
    "(If-Match or expected_version; 0 creates) and a stale one answers 409. Every version is kept in a "
    "queryable history. Reads carry an ETag (If-None-Match answers 304) and are cached in memory and on "
    "disk. Each change is published on NATS subject config.changed.<namespace>."
)


async def _start(app: FastAPI) -> None:
    settings: ConfigSettings = app.state.settings
    metrics = create_metrics(app)
    notifier = Notifier(app.state.nats, metrics, settings.nats_stream) if app.state.nats is not None else None
    service = ConfigService(app.state.db, settings, metrics, notifier)
    await service.start()
    app.state.config = service


async def _stop(app: FastAPI) -> None:
    service: ConfigService | None = getattr(app.state, "config", None)
    if service is not None:
        await service.stop()
        app.state.config = None


async def config_index(app: FastAPI) -> str | None:
    """Readiness: the version index is loaded (the disk cache is optional: an unusable one is logged, not a failure)."""
    service: ConfigService | None = getattr(app.state, "config", None)
    if service is None:
        return "starting"
    return None


def create_app(settings: ConfigSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The config-service app (settings from the environment when not given)."""
    settings = settings or ConfigSettings()
    kit = kit or KitSettings()
    app = create_service_app(
        kit=kit,
        title="config-service",
        description=DESCRIPTION,
        routers=[routes_namespaces.router, routes_config.router, routes_history.router],
        hot_routes=[routes_config.HOT],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        nats_url=settings.nats_url,
        on_startup=[_start],
        on_shutdown=[_stop],
        readiness=[config_index],
        settings=settings,
    )
    app.state.config = None
    return app
