"""The simulator's HTTP API: CoinGecko v3 endpoints from fixtures, admin fault injection, health, metrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from sandbox.coingecko_sim.faults import Fault, FaultPlan

_ORDERS = {
    "market_cap_desc": ("market_cap", True), "market_cap_asc": ("market_cap", False),
    "volume_desc": ("total_volume", True), "volume_asc": ("total_volume", False),
    "id_asc": ("id", False), "id_desc": ("id", True),
}


class FaultRequest(BaseModel):
    """``POST /admin/faults``: faults to queue after those already queued."""

    faults: list[Fault]


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    if status == 429:
        body: dict[str, Any] = {"status": {"error_code": 429, "error_message": message}}
    else:
        body = {"error": message}
    return JSONResponse(body, status_code=status, headers=headers)


def create_app(fixtures: Path, faults: FaultPlan | None = None) -> FastAPI:
    """The simulator serving ``fixtures`` (``markets.json``, ``market_chart/<id>.json``)."""
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    markets: list[dict[str, Any]] = json.loads((fixtures / "markets.json").read_text())
    charts_dir = fixtures / "market_chart"
    plan = faults or FaultPlan()
    registry = CollectorRegistry()
    requests_total = Counter("coingecko_sim_requests_total", "Requests by endpoint and status.", ["endpoint", "status"], registry=registry)
    app = FastAPI(title="CoinGecko API simulator", version="0.1")
    app.state.faults = plan

    @app.middleware("http")
    async def inject(request: Request, call_next: Any) -> Response:
        path = request.url.path
        endpoint = "admin" if path.startswith("/admin") else path.rsplit("/", 1)[-1] if path.startswith("/api/") else "other"
        fault = plan.take(path) if path.startswith("/api/") else None
        if fault is not None:
            retry_after = fault.retry_after if fault.retry_after is not None else (1 if fault.status in (429, 503) else None)
            headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
            message = "You've exceeded the Rate Limit. Please visit https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate limits." if fault.status == 429 else "injected fault"
            response: Response = _error(fault.status, message, headers)
        else:
            response = await call_next(request)
        requests_total.labels(endpoint, str(response.status_code)).inc()
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    @app.get("/api/v3/ping")
    def ping() -> dict[str, str]:
        return {"gecko_says": "(V3) To the Moon!"}

    @app.get("/api/v3/coins/markets", response_model=None)
    def coins_markets(
        vs_currency: str | None = None,
        ids: str | None = None,
        order: str = "market_cap_desc",
        per_page: Annotated[int, Query(ge=1, le=250)] = 100,
        page: Annotated[int, Query(ge=1)] = 1,
        sparkline: bool = False,
    ) -> Any:
        if not vs_currency:
            return _error(400, "Missing parameter vs_currency")
        if vs_currency.lower() != "usd":
            return _error(400, "invalid vs_currency")
        if order not in _ORDERS:
            return _error(400, "invalid order")
        rows = markets
        if ids:
            wanted = {i.strip() for i in ids.split(",")}
            rows = [m for m in rows if m["id"] in wanted]
        key, reverse = _ORDERS[order]
        rows = sorted(rows, key=lambda m: m[key], reverse=reverse)
        return rows[(page - 1) * per_page: page * per_page]

    @app.get("/api/v3/coins/{coin_id}/market_chart", response_model=None)
    def market_chart(coin_id: str, vs_currency: str | None = None, days: str | None = None) -> Any:
        if not vs_currency or days is None:
            return _error(400, "Missing parameter vs_currency or days")
        if vs_currency.lower() != "usd":
            return _error(400, "invalid vs_currency")
        path = charts_dir / f"{coin_id}.json"
        if "/" in coin_id or not path.is_file():
            return _error(404, "coin not found")
        chart = json.loads(path.read_text())
        if days != "max":
            try:
                n = int(float(days) * 24) + 1
            except ValueError:
                return _error(400, "invalid days")
            chart = {k: v[-n:] for k, v in chart.items()}
        return chart

    @app.get("/admin/faults")
    def get_faults() -> dict[str, Any]:
        return {"pending": plan.pending(), "injected": plan.injected}

    @app.post("/admin/faults")
    def post_faults(body: FaultRequest) -> dict[str, Any]:
        plan.add(body.faults)
        return {"pending": plan.pending(), "injected": plan.injected}

    @app.delete("/admin/faults")
    def delete_faults() -> dict[str, Any]:
        plan.clear()
        return {"pending": [], "injected": plan.injected}

    return app
