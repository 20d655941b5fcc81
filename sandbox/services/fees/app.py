"""The fees-service app: routers, start-up (caches, fill consumer) and shutdown."""

from __future__ import annotations

import asyncio
import logging

from fastapi import FastAPI

from sandbox.services.fees import routes_accounts, routes_estimate, routes_fills, routes_schedules
from sandbox.services.fees.consumer import FillConsumer
from sandbox.services.fees.migrations import MIGRATIONS
from sandbox.services.fees.models import FillEvent
from sandbox.services.fees.runtime import Counters, FeesRuntime, cancel_quietly
from sandbox.services.fees.schedules import PgScheduleRepository, ScheduleStore
from sandbox.services.fees.settings import FeesSettings
from sandbox.services.fees.universe import UniverseSource
from sandbox.services.fees.volume import load_usd_rates
from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.auth import ServiceClient
from sandbox.services.kit.db import make_time_series
from sandbox.services.kit.settings import KitSettings

log = logging.getLogger("sandbox.services.fees")


def create_app(settings: FeesSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The fees-service app (settings from the environment when not given)."""
    settings = settings or FeesSettings()  # type: ignore[call-arg]
    kit = kit or KitSettings()  # type: ignore[call-arg]
    if settings.universe_url and not (kit.auth_url and kit.service_client_id and kit.service_client_secret):
        raise ValueError(
            "FEES_UNIVERSE_URL needs a service account: set AETHER_AUTH_URL, "
            "AETHER_SERVICE_CLIENT_ID and AETHER_SERVICE_CLIENT_SECRET"
        )

    async def start(app: FastAPI) -> None:
        """Build the runtime, load caches, start the background loop and the fill consumer."""
        pool = app.state.db
        async with pool.acquire() as conn:
            time_series = await make_time_series(conn, "fills", "ts")
        client = ServiceClient(kit, base_url=settings.universe_url) if settings.universe_url else None
        app.state.universe_client = client
        store = ScheduleStore(
            PgScheduleRepository(pool), UniverseSource(client) if client else None,
            ttl_s=settings.schedule_ttl_s, miss_ttl_s=settings.schedule_miss_ttl_s,
        )
        runtime = FeesRuntime(settings=settings, pool=pool, schedules=store, counters=Counters.register(app))
        runtime.time_series = time_series
        loaded = await store.load()
        rates = await load_usd_rates(pool, runtime.rates)
        app.state.fees_stop = asyncio.Event()
        app.state.fees_maintenance = asyncio.create_task(
            store.run_background(settings.schedule_reload_s, app.state.fees_stop), name="fees-schedule-maintenance"
        )
        if settings.kafka_bootstrap:
            counters = runtime.counters

            async def handle(fills: list[FillEvent]) -> None:
                await runtime.record(fills, "kafka")

            runtime.consumer = FillConsumer(
                bootstrap=settings.kafka_bootstrap, topic=settings.fills_topic, group_id=settings.consumer_group,
                handler=handle, on_rejected=lambda reason, n: counters.rejected.labels(reason).inc(n),
                loop=asyncio.get_running_loop(), session_timeout_ms=settings.kafka_session_timeout_ms,
                partitions=settings.fills_topic_partitions, client_id=kit.service_name,
            )
            runtime.consumer.start()
        app.state.fees = runtime
        log.info(
            "fees runtime ready",
            extra={
                "schedules": loaded, "usd_rates": rates, "fills_table": time_series,
                "universe": settings.universe_url,
                "fills_topic": settings.fills_topic if settings.kafka_bootstrap else None,
            },
        )

    async def stop(app: FastAPI) -> None:
        """Stop the consumer and the background loop, close the universe client."""
        runtime: FeesRuntime | None = getattr(app.state, "fees", None)
        app.state.fees = None
        stop_event = getattr(app.state, "fees_stop", None)
        if stop_event is not None:
            stop_event.set()
        if runtime is not None and runtime.consumer is not None:
            await runtime.consumer.stop()
        await cancel_quietly(getattr(app.state, "fees_maintenance", None))
        client = getattr(app.state, "universe_client", None)
        if client is not None:
            await client.aclose()

    async def fill_consumer(app: FastAPI) -> str | None:
        """Readiness: the Kafka fill consumer reached the broker (absent when Kafka is not configured)."""
        runtime: FeesRuntime | None = getattr(app.state, "fees", None)
        if runtime is None or runtime.consumer is None:
            return None
        return runtime.consumer.health()

    return create_service_app(
        kit=kit,
        title="fees-service",
        description="Fee schedules, 30-day volume tiers and fee estimates.",
        routers=[routes_schedules.router, routes_fills.router, routes_accounts.router, routes_estimate.router],
        hot_routes=[routes_estimate.HOT],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        on_startup=[start],
        on_shutdown=[stop],
        readiness=[fill_consumer] if settings.kafka_bootstrap else [],
        settings=settings,
    )
