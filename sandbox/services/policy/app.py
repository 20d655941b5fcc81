"""The policy-service app: reference data caches, rules cache, routers, start-up and shutdown."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from sandbox.services.kit.app import create_service_app
from sandbox.services.kit.auth import ServiceClient
from sandbox.services.kit.settings import KitSettings
from sandbox.services.policy import routes_check, routes_reference, routes_rules
from sandbox.services.policy.credentials import load_credentials
from sandbox.services.policy.migrations import MIGRATIONS
from sandbox.services.policy.permissions import PermissionsCache, secrets_fetcher
from sandbox.services.policy.reference import ReferenceData, UpstreamError
from sandbox.services.policy.rules_cache import RulesCache
from sandbox.services.policy.runtime import Counters, PolicyRuntime
from sandbox.services.policy.settings import PolicySettings

log = logging.getLogger("sandbox.services.policy")


def create_app(settings: PolicySettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The policy-service app (settings from the environment when not given)."""
    settings = settings or PolicySettings()  # type: ignore[call-arg]
    kit = kit or KitSettings()  # type: ignore[call-arg]
    if not (kit.auth_url and kit.service_client_id and kit.service_client_secret):
        raise ValueError(
            "policy-service calls universe- and secrets-service: set AETHER_AUTH_URL, "
            "AETHER_SERVICE_CLIENT_ID and AETHER_SERVICE_CLIENT_SECRET"
        )

    async def start(app: FastAPI) -> None:
        """Open the upstream clients, load rules and instruments, start the refresh loops."""
        counters = Counters.register(app)
        timeout = settings.upstream_timeout_s
        universe = ServiceClient(kit, base_url=settings.universe_url, timeout=timeout)
        secrets = ServiceClient(kit, base_url=settings.secrets_url, timeout=timeout)
        app.state.policy_clients = [universe, secrets]
        reference = ReferenceData(
            universe=universe, venue=app.state.http if settings.venue_url else None, venue_url=settings.venue_url,
            timeout_s=timeout, on_refresh=lambda source, outcome: counters.refreshes.labels(source, outcome).inc(),
        )
        lookups = {kind: counters.permissions.labels(kind) for kind in ("hit", "stale", "miss", "unavailable")}
        permissions = PermissionsCache(
            secrets_fetcher(secrets, timeout), ttl_s=settings.permissions_ttl_s,
            max_stale_s=settings.permissions_max_stale_s, max_entries=settings.permissions_cache_size,
            on_result=lambda kind: lookups[kind].inc(),
        )
        rules = RulesCache(app.state.db, settings.database_url, poll_s=settings.rules_poll_s)
        await rules.start()
        for refresh in (reference.refresh_instruments, reference.refresh_venue):
            try:
                await refresh()
            except UpstreamError as exc:  # not ready until it works; the loops retry
                log.warning("reference data not loaded at start-up", extra={"error": str(exc)})
        reference.start(settings.universe_poll_s, settings.venue_poll_s)
        runtime = PolicyRuntime(reference=reference, permissions=permissions, rules=rules, counters=counters,
                                credentials=load_credentials(settings.kraken_credentials_dir))
        app.state.policy = runtime
        permissions.prefetch_later(sorted(rules.rules)[:1000])  # accounts with rules are the ones that trade
        log.info("policy runtime ready", extra={
            "instruments": len(reference.snapshot), "rules": len(rules),
            "venue": settings.venue_url, "kraken_credentials": runtime.credentials.state,
        })

    async def stop(app: FastAPI) -> None:
        """Stop the loops and close the upstream clients."""
        runtime: PolicyRuntime | None = getattr(app.state, "policy", None)
        app.state.policy = None
        if runtime is not None:
            await runtime.reference.stop()
            await runtime.rules.stop()
            await runtime.permissions.close()
        for client in getattr(app.state, "policy_clients", []):
            await client.aclose()

    async def instrument_cache(app: FastAPI) -> str | None:
        """Readiness: instruments were loaded from universe-service at least once."""
        runtime: PolicyRuntime | None = getattr(app.state, "policy", None)
        if runtime is None:
            return "not started"
        if not runtime.reference.loaded:
            return f"not loaded: {runtime.reference.error or 'pending'}"
        return None

    return create_service_app(
        kit=kit,
        title="policy-service",
        description="Venue policy checks for an order, listing every violation with a stable code.",
        routers=[routes_check.router, routes_rules.router, routes_reference.router],
        hot_routes=[routes_check.HOT],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        on_startup=[start],
        on_shutdown=[stop],
        readiness=[instrument_cache],
        settings=settings,
    )
