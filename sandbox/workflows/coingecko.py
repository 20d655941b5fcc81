"""coingecko-import: coin market data from the CoinGecko API into ``marketdata``, market caps to universe-service.

1. ``/coins/markets`` page by page (until a short page) for the vs currency;
2. ``/coins/{id}/market_chart`` per coin (prices, market caps, volumes);
3. rows into ``coingecko_markets`` and ``coingecko_market_chart`` (upserts: a rerun
   refreshes, never duplicates);
4. every coin's market cap to universe-service (``PUT /v1/market-caps``, as the
   platform's service account).

Each request is retried with backoff (429 honouring ``Retry-After``, 5xx,
connection errors).  A coin whose chart still fails is reported with the reason
and the run is ``partial``; failing to list the markets fails the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sandbox.workflows.base import WorkflowResult
from sandbox.workflows.marketdata import ensure_schema
from sandbox.workflows.retry import Backoff, HttpFailed, Retrier, RetryExhausted
from sandbox.workflows.settings import WorkflowSettings

log = logging.getLogger("sandbox.workflows.coingecko")

_MARKET = (
    "INSERT INTO coingecko_markets (ts, coin_id, symbol, name, vs_currency, price, market_cap, market_cap_rank, total_volume, circulating_supply) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (coin_id, vs_currency, ts) DO UPDATE SET "
    "price = EXCLUDED.price, market_cap = EXCLUDED.market_cap, market_cap_rank = EXCLUDED.market_cap_rank, "
    "total_volume = EXCLUDED.total_volume, circulating_supply = EXCLUDED.circulating_supply"
)
_CHART = (
    "INSERT INTO coingecko_market_chart (ts, coin_id, vs_currency, price, market_cap, total_volume) VALUES (%s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (coin_id, vs_currency, ts) DO UPDATE SET price = EXCLUDED.price, market_cap = EXCLUDED.market_cap, "
    "total_volume = EXCLUDED.total_volume"
)


def _num(value: Any) -> Decimal | None:
    """A JSON number as an exact decimal of its text (the client parses floats as Decimal)."""
    return None if value is None else Decimal(str(value))


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def chart_rows(coin_id: str, vs: str, chart: dict[str, list[list[Any]]]) -> list[tuple[Any, ...]]:
    """One row per timestamp of a ``market_chart`` answer, its three series joined on the timestamp."""
    series: dict[int, dict[str, Any]] = {}
    for key, column in (("prices", "price"), ("market_caps", "market_cap"), ("total_volumes", "total_volume")):
        for ms, value in chart.get(key) or ():
            series.setdefault(int(ms), {})[column] = _num(value)
    return [
        (datetime.fromtimestamp(ms / 1000, UTC), coin_id, vs, v.get("price"), v.get("market_cap"), v.get("total_volume"))
        for ms, v in sorted(series.items())
    ]


def market_rows(markets: list[dict[str, Any]], vs: str) -> list[tuple[Any, ...]]:
    """``coingecko_markets`` rows of a ``/coins/markets`` answer."""
    return [
        (_ts(m["last_updated"]), m["id"], m["symbol"], m["name"], vs, _num(m.get("current_price")), _num(m.get("market_cap")),
         m.get("market_cap_rank"), _num(m.get("total_volume")), _num(m.get("circulating_supply")))
        for m in markets
    ]


def import_markets(settings: WorkflowSettings, progress: Callable[[str], None] | None = None,
                   *, sleep: Callable[[float], None] | None = None) -> WorkflowResult:
    """Run the import; see the module docstring."""
    import httpx
    import psycopg

    if not settings.coingecko_url:
        raise ValueError("the CoinGecko import needs WORKFLOWS_COINGECKO_URL")
    retrier = Retrier(settings.http_retries, Backoff(settings.http_backoff_initial_s, settings.http_backoff_max_s))
    if sleep is not None:
        retrier.sleep = sleep
    vs = settings.coingecko_vs_currency
    failures: list[dict[str, str]] = []
    base = settings.coingecko_url.rstrip("/") + "/api/v3"
    with httpx.Client(timeout=15.0) as http:
        def get_json(what: str, url: str, params: dict[str, Any]) -> Any:
            response = retrier.call(what, lambda: http.get(url, params=params))
            return response.json(parse_float=Decimal)

        markets: list[dict[str, Any]] = []
        page = 1
        while True:
            batch = get_json(f"coins/markets page {page}", f"{base}/coins/markets",
                             {"vs_currency": vs, "order": "market_cap_desc", "per_page": settings.coingecko_per_page, "page": page})
            markets += batch
            if len(batch) < settings.coingecko_per_page:
                break
            page += 1
        if progress:
            progress(f"{len(markets)} coins on {page} pages; fetching their charts")
        charts: dict[str, list[tuple[Any, ...]]] = {}
        for m in markets:
            try:
                chart = get_json(f"market_chart {m['id']}", f"{base}/coins/{m['id']}/market_chart",
                                 {"vs_currency": vs, "days": settings.coingecko_chart_days})
                charts[m["id"]] = chart_rows(m["id"], vs, chart)
            except (RetryExhausted, HttpFailed, ValueError) as exc:
                failures.append({"item": m["id"], "error": str(exc)})
    rows_markets = market_rows(markets, vs)
    with psycopg.connect(settings.marketdata_database_url, connect_timeout=10) as conn:
        ensure_schema(conn)
        with conn.transaction(), conn.cursor() as cur:
            cur.executemany(_MARKET, rows_markets)
            for rows in charts.values():
                cur.executemany(_CHART, rows)
    chart_points = sum(len(r) for r in charts.values())
    universe = _feed_universe(settings, markets, failures)
    detail = {
        "coins": len(markets), "pages": page, "charts": len(charts), "chart_points": chart_points,
        "universe_market_caps": universe, "retried": dict(retrier.counts), "waited_s": round(retrier.waited, 3),
        "failures": failures,
    }
    return WorkflowResult(outcome="partial" if failures else "ok", records=len(rows_markets) + chart_points, detail=detail)


def _feed_universe(settings: WorkflowSettings, markets: list[dict[str, Any]], failures: list[dict[str, str]]) -> int:
    """PUT the market caps to universe-service; how many it took (a failure is reported, not raised)."""
    import httpx

    if not settings.universe_url:
        failures.append({"item": "universe-service", "error": "not running in this sandbox (WORKFLOWS_UNIVERSE_URL unset)"})
        return 0
    items = [
        {"asset": m["symbol"].upper(), "coin_id": m["id"], "market_cap": str(m["market_cap"]), "rank": m.get("market_cap_rank"),
         "vs_currency": settings.coingecko_vs_currency, "as_of": m["last_updated"]}
        for m in markets if m.get("market_cap") is not None
    ]
    retrier = Retrier(settings.http_retries, Backoff(settings.http_backoff_initial_s, settings.http_backoff_max_s))
    try:
        with httpx.Client(timeout=15.0) as http:
            token = _service_token(http, settings, retrier)
            response = retrier.call("universe-service market caps", lambda: http.put(
                f"{settings.universe_url.rstrip('/')}/v1/market-caps",  # type: ignore[union-attr]
                json={"source": "coingecko", "items": items}, headers={"Authorization": f"Bearer {token}"}))
        return int(response.json()["upserted"])
    except (RetryExhausted, HttpFailed, ValueError, KeyError) as exc:
        failures.append({"item": "universe-service", "error": str(exc)})
        return 0


def _service_token(http: Any, settings: WorkflowSettings, retrier: Retrier) -> str:
    if not (settings.auth_url and settings.service_client_id and settings.service_client_secret):
        raise ValueError("no service account (AETHER_AUTH_URL, AETHER_SERVICE_CLIENT_ID/SECRET) to call universe-service")
    response = retrier.call("auth-service token", lambda: http.post(
        f"{settings.auth_url.rstrip('/')}/v1/service-tokens",  # type: ignore[union-attr]
        json={"client_id": settings.service_client_id,
              "client_secret": settings.service_client_secret.get_secret_value(), "scope": []}))  # type: ignore[union-attr]
    return str(response.json()["access_token"])
