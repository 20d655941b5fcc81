"""``GET /healthz``: liveness (``?probe=live``) and readiness (every dependency answers)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import JSONResponse

log = logging.getLogger("sandbox.services.kit.health")

CHECK_TIMEOUT_S = 2.0

ReadinessCheck = Callable[[FastAPI], Awaitable["str | None"]]


async def _db(app: FastAPI) -> str | None:
    async with app.state.db.acquire(timeout=CHECK_TIMEOUT_S) as conn:
        await conn.fetchval("SELECT 1")
    return None


async def _redis(app: FastAPI) -> str | None:
    await app.state.redis.ping()
    return None


async def _sessions(app: FastAPI) -> str | None:
    await app.state.sessions.ping()
    return None


async def _nats(app: FastAPI) -> str | None:
    return None if app.state.nats.is_connected else "not connected"


async def _kafka(app: FastAPI) -> str | None:
    await app.state.kafka.ping(timeout=CHECK_TIMEOUT_S)
    return None


def builtin_checks(app: FastAPI) -> dict[str, ReadinessCheck]:
    """Checks for the clients this app opened."""
    checks: dict[str, ReadinessCheck] = {}
    for name, fn in (("database", _db), ("redis", _redis), ("sessions", _sessions), ("nats", _nats), ("kafka", _kafka)):
        attr = {"database": "db"}.get(name, name)
        if getattr(app.state, attr, None) is not None:
            checks[name] = fn
    return checks


async def run_check(app: FastAPI, fn: ReadinessCheck) -> str:
    """``"ok"`` or the reason the check failed (a returned string other than ``"ok"``, an error, a timeout)."""
    try:
        result = await asyncio.wait_for(fn(app), CHECK_TIMEOUT_S)
    except TimeoutError:
        return "timeout"
    except Exception as exc:  # a readiness probe reports, it never raises
        return f"error: {type(exc).__name__}: {exc}"[:200]
    return "ok" if result is None or result == "ok" else str(result)


def health_router(extra: Sequence[ReadinessCheck]) -> APIRouter:
    """The router serving ``/healthz``."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="Liveness (probe=live) or readiness (default)")
    async def healthz(request: Request, probe: Literal["live", "ready"] = Query("ready")) -> JSONResponse:
        """200 when alive/ready, 503 with the failing checks otherwise."""
        app: FastAPI = request.app
        if probe == "live":
            return JSONResponse({"status": "ok"})
        checks = {**builtin_checks(app), **{getattr(fn, "__name__", f"check{i}"): fn for i, fn in enumerate(extra)}}
        names = list(checks)
        results = await asyncio.gather(*(run_check(app, checks[n]) for n in names))
        report: dict[str, Any] = dict(zip(names, results, strict=True))
        ok = all(r == "ok" for r in results) and getattr(app.state, "started", False)
        if not getattr(app.state, "started", False):
            report["startup"] = "in progress"
        ts = getattr(app.state, "timescaledb", None)
        if ts is not None:
            report["timescaledb"] = ts
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": report}, status_code=200 if ok else 503)

    return router
