"""The oms-service app: routers, start-up (runtime) and shutdown."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.settings import KitSettings
from sandbox.services.oms import routes_accounts, routes_orders, routes_reconcile, routes_strategies
from sandbox.services.oms.migrations import MIGRATIONS
from sandbox.services.oms.runtime import OmsRuntime
from sandbox.services.oms.settings import OmsSettings

log = logging.getLogger("sandbox.services.oms")


def create_app(settings: OmsSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The oms-service app (settings from the environment when not given)."""
    settings = settings or OmsSettings()  # type: ignore[call-arg]
    kit = kit or KitSettings()  # type: ignore[call-arg]
    needs_token = settings.policy_url or settings.risk_url or settings.fees_url or settings.capital_allocator_url
    if needs_token and not (kit.auth_url and kit.service_client_id and kit.service_client_secret):
        raise ValueError(
            "OMS_POLICY_URL / OMS_RISK_URL / OMS_FEES_URL / OMS_CAPITAL_ALLOCATOR_URL need a service account: "
            "set AETHER_AUTH_URL, AETHER_SERVICE_CLIENT_ID and AETHER_SERVICE_CLIENT_SECRET"
        )

    async def start(app: FastAPI) -> None:
        """Build and start the runtime."""
        runtime = OmsRuntime(app, settings, kit)
        await runtime.start()
        app.state.oms = runtime

    async def stop(app: FastAPI) -> None:
        """Stop the runtime."""
        runtime: OmsRuntime | None = getattr(app.state, "oms", None)
        app.state.oms = None
        if runtime is not None:
            await runtime.stop()

    async def startup_reconciled(app: FastAPI) -> str | None:
        """Readiness: the start-up reconciliation has finished (whatever its outcome)."""
        runtime: OmsRuntime | None = getattr(app.state, "oms", None)
        if runtime is None:
            return "starting"
        return None if runtime.startup_done.is_set() else "start-up reconciliation running"

    async def instruments(app: FastAPI) -> str | None:
        """Readiness: the venue's instruments are loaded (orders cannot be routed without them)."""
        runtime: OmsRuntime | None = getattr(app.state, "oms", None)
        if runtime is None:
            return "starting"
        return None if len(runtime.catalog) else f"instruments not loaded: {runtime.catalog_error}"

    return create_service_app(
        kit=kit,
        title="oms-service",
        description="Order management: checks, capital, the venue, executions, positions and reconciliation.",
        routers=[routes_orders.router, routes_accounts.router, routes_strategies.router, routes_reconcile.router],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        redis_url=settings.redis_url,
        nats_url=settings.nats_url,
        kafka_bootstrap=settings.kafka_bootstrap,
        on_startup=[start],
        on_shutdown=[stop],
        readiness=[startup_reconciled, instruments],
        settings=settings,
        hot_routes=[routes_orders.HOT],
    )
