"""CoinGecko fixtures (seeded, reproducible, CoinGecko's shapes), their parsing, and the simulator's fault queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sandbox.coingecko_sim.faults import Fault, FaultPlan, parse_faults
from sandbox.coingecko_sim.generate import DEFAULT_DIR, write
from sandbox.workflows.coingecko import chart_rows, market_rows

MARKET_FIELDS = {
    "id", "symbol", "name", "image", "current_price", "market_cap", "market_cap_rank", "fully_diluted_valuation",
    "total_volume", "high_24h", "low_24h", "price_change_24h", "price_change_percentage_24h", "market_cap_change_24h",
    "market_cap_change_percentage_24h", "circulating_supply", "total_supply", "max_supply", "ath", "ath_change_percentage",
    "ath_date", "atl", "atl_change_percentage", "atl_date", "roi", "last_updated",
}


def test_the_shipped_fixtures_are_the_generators_output(tmp_path: Path) -> None:
    written = write(tmp_path)
    for path in written:
        shipped = DEFAULT_DIR / path.relative_to(tmp_path)
        assert shipped.read_bytes() == path.read_bytes(), f"{shipped} differs: run python -m sandbox.coingecko_sim.generate"


def test_fixtures_have_coingeckos_shapes() -> None:
    markets = json.loads((DEFAULT_DIR / "markets.json").read_text())
    assert all(set(m) == MARKET_FIELDS for m in markets)
    assert [m["market_cap_rank"] for m in markets] == list(range(1, len(markets) + 1))
    assert markets == sorted(markets, key=lambda m: -m["market_cap"])
    chart = json.loads((DEFAULT_DIR / "market_chart" / "bitcoin.json").read_text())
    assert set(chart) == {"prices", "market_caps", "total_volumes"}
    assert len({len(v) for v in chart.values()}) == 1
    assert all(isinstance(ms, int) and ms % 3_600_000 == 0 for ms, _ in chart["prices"])
    assert chart["prices"][-1][1] == markets[0]["current_price"]


def test_rows_keep_exact_decimals() -> None:
    markets = json.loads((DEFAULT_DIR / "markets.json").read_text(), parse_float=Decimal)
    row = market_rows(markets[:1], "usd")[0]
    assert row[1:5] == ("bitcoin", "btc", "Bitcoin", "usd")
    assert row[5] == Decimal(str(markets[0]["current_price"])) and row[6] == markets[0]["market_cap"]
    chart = {"prices": [[1783465200000, Decimal("1.5")], [1783468800000, Decimal("1.25")]],
             "market_caps": [[1783465200000, 10]], "total_volumes": [[1783468800000, Decimal("3.0")]]}
    assert chart_rows("x", "usd", chart) == [
        (datetime(2026, 7, 7, 23, 0, tzinfo=UTC), "x", "usd", Decimal("1.5"), Decimal(10), None),
        (datetime(2026, 7, 8, 0, 0, tzinfo=UTC), "x", "usd", Decimal("1.25"), None, Decimal("3.0")),
    ]


def test_faults_are_served_in_order_to_matching_paths() -> None:
    plan = FaultPlan(parse_faults("429x2@/api/v3/coins/markets,500"))
    assert plan.take("/api/v3/coins/bitcoin/market_chart").status == 500  # the catch-all is the only match
    assert plan.take("/api/v3/coins/markets").status == 429
    assert plan.take("/api/v3/coins/markets").status == 429
    assert plan.take("/api/v3/coins/markets") is None
    plan.add([Fault(503, 1, "/api/v3/ping", retry_after=5)])
    assert plan.pending() == [{"status": 503, "count": 1, "path": "/api/v3/ping", "retry_after": 5}]
    assert plan.injected == {500: 1, 429: 2}
