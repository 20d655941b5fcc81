"""risk-service with a real Feast feature server: volatility-scaled position limits and their fallbacks.

Trades with a known realised volatility go into a ``marketdata`` database,
are materialised into Redis and served by ``feast serve``; risk-service reads
``symbol_volatility_1m:realised_vol_1m`` from it on every check (cache TTL 0).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sandbox.features.materialize import run_pipeline
from sandbox.features.server import FeatureServer
from sandbox.features.venv import ensure_feast
from sandbox.infra.ports import free_port
from sandbox.workflows.marketdata import ensure_schema

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("features")]

#: Five trades alternating 100 / 101 within a minute: four returns of |ln 1.01|.
PRICES = ["100", "101", "100", "101", "100"]
VOL = 2 * math.log(1.01)
REFERENCE = Decimal(str(VOL)) / 2  # the symbol is twice as volatile as the reference: limits halve


@pytest.fixture(scope="module")
def feature_server(postgres: Any, redis_server: Any, infra_root: Path) -> Iterator[FeatureServer]:
    """BTC/USD trades materialised and served; ETH/USD has none."""
    ensure_feast()
    postgres.create_database("risk_vol_marketdata")
    dsn = postgres.dsn("risk_vol_marketdata")
    start = datetime(2026, 7, 7, 23, 0, tzinfo=timezone.utc)
    with psycopg.connect(dsn) as conn:
        ensure_schema(conn)
        conn.execute("TRUNCATE market_trades")
        for n, price in enumerate(PRICES):
            conn.execute(
                "INSERT INTO market_trades VALUES (%s, 'BTC/USD', %s, 0.1, 'buy', 'market', %s, 'kraken.trade.BTC-USD', %s, 0)",
                (start + timedelta(seconds=10 * n), Decimal(price), n, n),
            )
    home = infra_root / "risk-feast"
    report = run_pipeline("materialize", home / "repo", redis_url=f"redis://127.0.0.1:{redis_server.port}/8",
                          marketdata_url=dsn)
    assert report.views["symbol_volatility_1m"]["rows"] == 1
    with FeatureServer(home, home / "repo", free_port()) as server:
        yield server


@pytest.fixture
def risk_env(postgres: Any) -> dict[str, str]:
    """A risk-service on three fresh databases (no Kafka, no NATS: not needed for checks)."""
    suffix = secrets.token_hex(4)
    env = {}
    for name in ("compliance", "diversification", "esg"):
        postgres.create_database(f"risk_{name}_{suffix}")
        env[f"RISK_{name.upper()}_DATABASE_URL"] = postgres.dsn(f"risk_{name}_{suffix}")
    return env


def test_position_limit_scales_with_the_served_volatility(
    feature_server: FeatureServer, start_service: Any, risk_env: dict[str, str], admin_token: str, make_user: Any
) -> None:
    risk = start_service("risk", {
        **risk_env, "RISK_FEATURE_SERVER_URL": feature_server.url, "RISK_VOLATILITY_REFERENCE": str(REFERENCE),
        "RISK_VOLATILITY_TTL_SECONDS": "0", "RISK_VOLATILITY_ERROR_TTL_SECONDS": "0",
        # The feature server's first answer can take longer than the default 0.5 s on a busy CI machine (it
        # failed CI once: the check fell back to the full limit); this test is about scaling, not the timeout.
        "RISK_FEATURE_TIMEOUT_SECONDS": "10",
    })
    _, _, trader = make_user("trader")

    def call(method: str, path: str, token: str, body: Any = None) -> httpx.Response:
        return httpx.request(method, risk.url + path, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=10)

    for symbol in ("BTC/USD", "ETH/USD"):
        put = call("PUT", f"/v1/limits/positions/acct-1/{symbol}", admin_token, {"max_position": "10"})
        assert put.status_code == 201, put.text

    def check(symbol: str, qty: str) -> dict[str, Any]:
        resp = call("POST", "/v1/check-order", trader,
                    {"account": "acct-1", "symbol": symbol, "side": "buy", "qty": qty, "price": "100"})
        assert resp.status_code == 200, resp.text
        return resp.json()

    wild = check("BTC/USD", "6")  # 6 > 10 * 0.5
    assert wild["allowed"] is False and [v["code"] for v in wild["violations"]] == ["position_limit_exceeded"], wild
    applied = wild["position_limit"]
    assert applied["scaled"] is True and Decimal(applied["limit"]) == pytest.approx(Decimal(5))
    assert float(applied["volatility_1m"]) == pytest.approx(VOL, rel=1e-9)
    assert wild["violations"][0]["detail"]["scaling"]["scaled"] is True
    assert check("BTC/USD", "4")["allowed"] is True

    missing = check("ETH/USD", "6")  # no feature for ETH/USD: the full limit, and why
    assert missing["allowed"] is True
    assert (missing["position_limit"]["limit"], missing["position_limit"]["scaled"]) == ("10", False)
    assert "feature_missing" in missing["position_limit"]["reason"]

    feature_server.stop()  # the server is down: the full limit, and why
    down = check("BTC/USD", "6")
    assert down["allowed"] is True and down["position_limit"]["limit"] == "10"
    assert "feature_server_unavailable" in down["position_limit"]["reason"]

    metrics = httpx.get(risk.url + "/metrics", timeout=10).text
    for outcome in ("scaled", "fallback"):
        assert f'risk_position_limit_scaling_total{{outcome="{outcome}"}}' in metrics
    assert 'risk_volatility_lookups_total{outcome="error"}' in metrics
