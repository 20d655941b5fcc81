"""coingecko-import against the CoinGecko simulator, PostgreSQL and a real universe-service.

Here (beside the service fixtures) rather than in tests/integration/: it needs
the session auth-service and ``start_service`` for universe-service.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from sandbox.infra.ports import free_port
from sandbox.infra.wait import wait_until
from sandbox.spec.loader import default_spec
from sandbox.workflows import runner
from sandbox.workflows.registry import lookup
from sandbox.workflows.settings import WorkflowSettings

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "coingecko"
MARKETS = json.loads((FIXTURES / "markets.json").read_text(), parse_float=Decimal)


@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The CoinGecko simulator as its own process (``python -m sandbox.coingecko_sim``)."""
    port = free_port()
    log = tmp_path_factory.mktemp("cg") / "sim.log"
    env = {**os.environ, "AETHER_PORT": str(port), "AETHER_HOST": "127.0.0.1", "COINGECKO_SIM_FIXTURES": str(FIXTURES)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sandbox.coingecko_sim"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool | str:
        try:
            return httpx.get(url + "/healthz", timeout=1).status_code == 200
        except httpx.TransportError as exc:
            return str(exc)

    try:
        wait_until(ready, timeout=30, interval=0.1, what="coingecko simulator", log_tail=lambda: log.read_text().splitlines()[-20:])
        yield url
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(10)


@pytest.fixture(scope="module")
def universe_url(postgres: Any, start_service_shared: Any, auth_service: Any, redis_server: Any) -> str:
    """One universe-service for the module (no venue: it serves what it has), wired to the session auth-service."""
    db = f"uni_{uuid.uuid4().hex[:8]}"
    postgres.create_database(db)
    return start_service_shared("universe", {
        "UNIVERSE_DATABASE_URL": postgres.dsn(db), "UNIVERSE_VENUE_URL": f"http://127.0.0.1:{free_port()}",
        "UNIVERSE_SYNC_RETRY_MAX_S": "30", "UNIVERSE_SYNC_TIMEOUT_S": "1",
        "AETHER_AUTH_URL": auth_service.url, "AETHER_SESSION_REDIS_URL": redis_server.url,
        "AETHER_SERVICE_CLIENT_ID": "universe-service", "AETHER_SERVICE_CLIENT_SECRET": auth_service.service_accounts["universe-service"],
    }).url


@pytest.fixture
def setup(postgres: Any, universe_url: str, auth_service: Any, simulator: str) -> tuple[WorkflowSettings, str]:
    """Fresh databases and settings for the import; no fault left queued."""
    tag = uuid.uuid4().hex[:8]
    for db in (f"wf_{tag}", f"md_{tag}"):
        postgres.create_database(db)
    httpx.delete(simulator + "/admin/faults")
    settings = WorkflowSettings(
        postgres_url=postgres.dsn(), workflows_database_url=postgres.dsn(f"wf_{tag}"), marketdata_database_url=postgres.dsn(f"md_{tag}"),
        coingecko_url=simulator, universe_url=universe_url, auth_url=auth_service.url,
        service_client_id="test-client", service_client_secret=auth_service.service_accounts["test-client"],
        coingecko_per_page=10, coingecko_chart_days=1, http_retries=2, http_backoff_initial_s=0.05, http_backoff_max_s=0.2,
    )
    return settings, universe_url


def counts(settings: WorkflowSettings) -> tuple[int, int]:
    with psycopg.connect(settings.marketdata_database_url) as conn:
        return (conn.execute("SELECT count(*) FROM coingecko_markets").fetchone()[0],
                conn.execute("SELECT count(*) FROM coingecko_market_chart").fetchone()[0])


def test_import_survives_an_injected_429_and_500(setup: tuple[WorkflowSettings, str], simulator: str, admin_token: str) -> None:
    settings, universe_url = setup
    faults = [{"status": 429, "count": 1, "path": "/api/v3/coins/markets", "retry_after": 1},
              {"status": 500, "count": 1, "path": "/api/v3/coins/bitcoin/market_chart"}]
    assert httpx.post(simulator + "/admin/faults", json={"faults": faults}).status_code == 200

    row = runner.run(lookup(default_spec(), "coingecko-import"), settings, "cli")

    assert row["outcome"] == "ok", row
    assert row["detail"]["retried"] == {"429": 1, "500": 1}
    assert row["detail"]["waited_s"] >= 1.0  # the 429's Retry-After was honoured
    assert httpx.get(simulator + "/admin/faults").json() == {"pending": [], "injected": {"429": 1, "500": 1}}
    n = len(MARKETS)
    assert counts(settings) == (n, n * 25)  # 1 day of hourly points: 25 per coin
    assert row["records"] == n + n * 25
    with psycopg.connect(settings.marketdata_database_url) as conn:
        cap = conn.execute("SELECT market_cap FROM coingecko_markets WHERE coin_id = 'bitcoin'").fetchone()[0]
    assert cap == MARKETS[0]["market_cap"]

    caps = httpx.get(universe_url + "/v1/market-caps", headers={"Authorization": f"Bearer {admin_token}"}).json()["items"]
    assert len(caps) == n == row["detail"]["universe_market_caps"]
    assert caps[0]["asset"] == "BTC" and Decimal(caps[0]["market_cap"]) == MARKETS[0]["market_cap"] and caps[0]["rank"] == 1


def test_a_coin_that_keeps_failing_is_reported_and_a_rerun_duplicates_nothing(setup: tuple[WorkflowSettings, str], simulator: str) -> None:
    settings, _ = setup
    faults = [{"status": 500, "count": 3, "path": "/api/v3/coins/solana/market_chart"}]  # 1 attempt + 2 retries
    httpx.post(simulator + "/admin/faults", json={"faults": faults})
    defn = lookup(default_spec(), "coingecko-import")

    row = runner.run(defn, settings, "cli")
    assert row["outcome"] == "partial"
    assert [f["item"] for f in row["detail"]["failures"]] == ["solana"]
    assert "HTTP 500" in row["detail"]["failures"][0]["error"]
    n = len(MARKETS)
    assert counts(settings) == (n, (n - 1) * 25)

    again = runner.run(defn, settings, "cli")
    assert again["outcome"] == "ok"
    assert counts(settings) == (n, n * 25)
