"""``create_app``: secrets-service on the shared kit."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.settings import KitSettings
from sandbox.services.secrets import routes_admin, routes_keys
from sandbox.services.secrets.importer import import_dir
from sandbox.services.secrets.listener import ChangeListener
from sandbox.services.secrets.migrations import MIGRATIONS
from sandbox.services.secrets.rotation import Rotator
from sandbox.services.secrets.runtime import Metrics, SecretsState
from sandbox.services.secrets.settings import SecretsSettings

log = logging.getLogger("sandbox.services.secrets")

DESCRIPTION = (
    "Kraken API key pairs per account, sealed with AES-256-GCM envelope encryption under a versioned master key. "
    "Metadata never carries secrets; reveal is reserved to service identities with scope `secrets:reveal` and "
    "every attempt is audited."
)


def create_app(settings: SecretsSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """Build the app; settings come from the environment unless given."""
    settings = settings or SecretsSettings()  # type: ignore[call-arg]  # from the environment
    kit = kit or KitSettings()  # type: ignore[call-arg]

    async def startup(app: FastAPI) -> None:
        state: SecretsState = app.state.secrets
        pool = app.state.db
        state.rotator = Rotator(pool, state.ring, on_rotated=state.metrics.rotated.inc,
                                on_failed=state.metrics.rotation_failures.inc)
        state.listener = ChangeListener(settings.database_url, state.cache)
        await state.listener.start()
        try:
            await import_dir(pool, state.ring, settings.kraken_credentials_dir)
        except BaseException:
            await state.listener.stop()  # shutdown hooks are not registered yet when start-up fails
            raise
        log.info("key ring loaded", extra={"key_versions": state.ring.versions,
                                            "current_version": state.ring.current_version})

    async def shutdown(app: FastAPI) -> None:
        state: SecretsState = app.state.secrets
        if state.rotator is not None:
            await state.rotator.stop()
        if state.listener is not None:
            await state.listener.stop()

    app = create_service_app(
        kit=kit,
        title="secrets-service",
        description=DESCRIPTION,
        routers=[routes_keys.router, routes_admin.router],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        on_startup=[startup],
        on_shutdown=[shutdown],
        settings=settings,
    )
    app.state.secrets = SecretsState(settings=settings, ring=settings.key_ring(), metrics=Metrics.register(app))
    return app
