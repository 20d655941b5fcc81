"""``python -m sandbox.venue``: the simulated Kraken venue, one process, one event loop.

- REST on ``--port`` (``AETHER_PORT``): Kraken's public API (``/0/public/*``), its
  private trading API (``/0/private/*``, API-Sign checked), the private
  ``executions`` WebSocket (``/ws-auth/v2``), the loopback-only ``/admin/*`` API for
  scenarios, replay control (``/admin/replay``) and ``/healthz``.
- Market data on ``--ws-port`` (``AETHER_WS_PORT``): Kraken's public WebSocket (v2 at
  ``/v2``, v1 at ``/``) replaying a recorded session; every replayed frame also feeds
  the matching engine, so resting orders fill when the replayed market crosses them.

The account for the platform's Kraken key pair (``KRAKEN_CREDENTIALS_DIR``) is created
and funded at start-up.  Options: ``--assetpairs FILE``, ``--session NAME`` (default
``v2-book10-majors``, looping; ``VENUE_SESSION``), ``--seed N`` (``VENUE_SEED``),
``--id-epoch N`` (``VENUE_ID_EPOCH``; default: the start time in microseconds,
so a restarted venue never reissues an order id the OMS already holds).
``VENUE_ADMIN_ALLOW``: more clients for ``/admin/*`` than loopback (CIDRs; ``gateway``: the docker
bridge's gateway, which the docker runtime sets so the host reaches it through the published port).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sandbox.errors import SandboxError

REPO = Path(__file__).resolve().parents[2]
DEFAULT_ASSETPAIRS = REPO / "fixtures" / "kraken" / "assetpairs.json"
DEFAULT_SESSION = "v2-book10-majors"


def build_app(  # noqa: ANN201 - FastAPI is imported inside, so --help stays fast
    assetpairs: Path, *, host: str, ws_port: int, session: str | None, seed: int, system_status: str = "online",
    admin_allow: str = "", id_epoch: int = 0,
):
    """The venue's FastAPI app; its lifespan runs the trading clocks and the market-data server."""
    from fastapi import Depends, FastAPI
    from fastapi.responses import Response

    from sandbox.services.kit.middleware import RequestContextMiddleware
    from sandbox.venue.metrics import venue_metrics

    from sandbox.venue.control import ReplayController
    from sandbox.venue.public_rest import AssetPairsCatalog, public_router
    from sandbox.venue.trading.admin import admin_networks, loopback_guard
    from sandbox.venue.trading.app import trading_routers
    from sandbox.venue.trading.replay_bridge import replay_listener
    from sandbox.venue.trading.venue import TradingVenue
    from sandbox.venue.ws import ReplayOptions

    catalog = AssetPairsCatalog.from_file(assetpairs)
    venue = TradingVenue(catalog, seed=seed, id_epoch=id_epoch)
    venue.set_status(system_status)
    if credentials := os.environ.get("KRAKEN_CREDENTIALS_DIR"):
        venue.account_from_credentials(credentials)
    controller = ReplayController(
        host, ws_port,
        default_session=session,
        default_options=ReplayOptions(loop=True),
        frame_listeners=[replay_listener(venue)],
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await venue.start()
        await controller.start()
        try:
            yield
        finally:
            await controller.stop()
            await venue.stop()

    app = FastAPI(title="Kraken venue simulator", version="0.1.0", lifespan=lifespan)
    metrics = venue_metrics(lambda: controller.server, venue.hub.connection_count)
    app.state.trading = venue
    app.state.replay = controller
    app.include_router(public_router(catalog, system_status=lambda: venue.system_status))
    networks = admin_networks(admin_allow)
    for router in trading_routers(venue, admin_networks=networks):
        app.include_router(router)
    # Replay control is admin too: the same networks as the trading side's /admin.
    app.include_router(controller.router(), dependencies=[Depends(loopback_guard(networks))])

    @app.get("/metrics", include_in_schema=False)
    async def metrics_endpoint() -> Response:
        """Prometheus text: HTTP traffic, process CPU/memory, the replay's counters."""
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    # The kit's middleware: X-Request-ID and HTTP metrics by route template.
    app.add_middleware(RequestContextMiddleware, metrics=metrics)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, object]:
        """Ready once the catalogue is loaded and, when a session is configured, its feed is listening."""
        from fastapi.responses import JSONResponse

        feeding = controller.server is not None
        body = {"status": "ok", "pairs": len(catalog.pairs), "market_data": "replaying" if feeding else "idle"}
        if session and not feeding:
            return JSONResponse({**body, "status": "starting"}, status_code=503)  # type: ignore[return-value]
        return body

    return app


def main(argv: list[str] | None = None) -> int:
    """Parse options and serve until SIGINT/SIGTERM; returns the exit code."""
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sandbox.venue", description=__doc__.splitlines()[0])
    parser.add_argument("--assetpairs", type=Path, default=DEFAULT_ASSETPAIRS)
    # The runtimes pass the component's addresses as AETHER_HOST / AETHER_PORT / AETHER_WS_PORT.
    parser.add_argument("--host", default=env.get("AETHER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("AETHER_PORT", "8080")))
    parser.add_argument("--ws-port", type=int, default=int(env.get("AETHER_WS_PORT", "8081")))
    parser.add_argument("--session", default=env.get("VENUE_SESSION", DEFAULT_SESSION),
                        help="fixture replayed on the market-data port ('' for none until /admin/replay)")
    parser.add_argument("--seed", type=int, default=int(env.get("VENUE_SEED", "0")))
    parser.add_argument("--id-epoch", type=int, default=int(env.get("VENUE_ID_EPOCH") or time.time_ns() // 1000))
    parser.add_argument("--system-status", default="online", help="online, maintenance, cancel_only or post_only")
    args = parser.parse_args(argv)

    import uvicorn

    try:
        app = build_app(
            args.assetpairs, host=args.host, ws_port=args.ws_port, session=args.session or None, seed=args.seed,
            system_status=args.system_status, admin_allow=env.get("VENUE_ADMIN_ALLOW", ""), id_epoch=args.id_epoch,
        )
    except SandboxError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
