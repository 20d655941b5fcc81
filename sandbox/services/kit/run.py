"""``run(app_factory)``: serve a kit app with uvicorn (one worker, uvloop, httptools, no access log)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from fastapi import FastAPI
from pydantic import ValidationError


def _settings_problem(exc: ValidationError) -> str:
    """One line per missing/invalid setting, naming the environment variable when known."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err.get("loc", ())) or "?"
        lines.append(f"  {loc}: {err.get('msg', '')}")
    return "\n".join(lines)


def run(app_factory: Callable[[], FastAPI]) -> None:
    """Build the app (settings from the environment) and serve it until SIGTERM/SIGINT (graceful)."""
    import uvicorn

    try:
        app = app_factory()
    except ValidationError as exc:
        print(f"invalid service settings ({exc.title}):\n{_settings_problem(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    kit = app.state.kit
    config = uvicorn.Config(
        app,
        host=kit.host,
        port=kit.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_config=None,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run()
    if not server.started:
        logging.getLogger("sandbox.services.kit").error("service failed to start")
        raise SystemExit(3)
