"""Wiring: the trading side's routers for the venue process, and a stand-alone app.

In the venue process (one event loop for uvicorn and the market-data
WebSocket server)::

    venue = TradingVenue(catalog, seed=seed)            # the catalogue public REST serves
    venue.account_from_credentials(os.environ["KRAKEN_CREDENTIALS_DIR"])  # the platform's key pair
    app.include_router(public_router(catalog, system_status=lambda: venue.system_status))
    for router in trading_routers(venue):
        app.include_router(router)
    # lifespan: await venue.start() ... await venue.stop()
    # the replay driver, after applying each frame to its MarketState:
    listener = replay_listener(venue)                    # sandbox.venue.trading.replay_bridge
    listener(frame, market_state)                        # -> venue.on_book / venue.on_trade

:func:`create_trading_app` does exactly that for tests and for running the
trading side alone (synthetic books set through ``/admin/book``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI

from sandbox.venue.trading.admin import LOOPBACK, admin_router
from sandbox.venue.trading.executions_ws import PRIVATE_WS_PATH, websocket_router
from sandbox.venue.trading.rest import private_router
from sandbox.venue.trading.venue import TradingVenue


def trading_routers(
    venue: TradingVenue,
    *,
    admin_networks: Iterable[str] = LOOPBACK,
    ws_path: str | None = PRIVATE_WS_PATH,
) -> list[APIRouter]:
    """``/0/private/*``, ``/admin/*`` (loopback only) and the executions WebSocket at ``ws_path`` (``None``: none)."""
    routers = [private_router(venue), admin_router(venue, admin_networks)]
    if ws_path:
        routers.append(websocket_router(venue, ws_path))
    return routers


def create_trading_app(
    assetpairs: str | Path | Any,
    *,
    seed: int = 0,
    admin_networks: Iterable[str] = LOOPBACK,
    **venue_options: Any,
) -> FastAPI:
    """A FastAPI app with Kraken's public and private REST, the executions WebSocket and the admin API.

    ``assetpairs`` is an AssetPairs fixture path or an
    :class:`~sandbox.venue.public_rest.AssetPairsCatalog`.  The venue is
    ``app.state.trading``; its clocks run while the app's lifespan does.
    """
    from sandbox.venue.public_rest import AssetPairsCatalog, public_router

    catalog = assetpairs if isinstance(assetpairs, AssetPairsCatalog) else AssetPairsCatalog.from_file(assetpairs)
    venue = TradingVenue(catalog, seed=seed, **venue_options)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await venue.start()
        try:
            yield
        finally:
            await venue.stop()

    app = FastAPI(title="Kraken venue simulator (trading)", version="0.1.0", lifespan=lifespan)
    app.state.trading = venue
    app.state.catalog = catalog
    app.include_router(public_router(catalog, system_status=lambda: venue.system_status))
    for router in trading_routers(venue, admin_networks=admin_networks):
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        """Liveness and readiness."""
        return {"status": "ok", "pairs": len(catalog.pairs), "trading": venue.system_status}

    return app
