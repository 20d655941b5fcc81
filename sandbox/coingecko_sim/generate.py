"""The seeded generator of ``fixtures/coingecko``: synthetic coins in CoinGecko's response formats.

``python -m sandbox.coingecko_sim.generate [DIR]`` rewrites the fixtures byte for
byte from :data:`SEED`.  Prices, supplies and volumes are random walks from the
seed: the figures are invented, only the shapes are CoinGecko's.

* ``markets.json``: the ``/coins/markets?vs_currency=usd`` list (every field
  CoinGecko returns), ordered by market cap;
* ``market_chart/<id>.json``: ``/coins/{id}/market_chart`` (``prices``,
  ``market_caps``, ``total_volumes`` as ``[ms, value]``) hourly over
  :data:`CHART_DAYS` days ending at :data:`ANCHOR`.
"""

from __future__ import annotations

import json
import math
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

SEED = 20260707
#: The fixtures' "now": the last point of every chart and every coin's last_updated.
ANCHOR = datetime(2026, 7, 7, 23, 0, tzinfo=UTC)
CHART_DAYS = 3
DEFAULT_DIR = Path(__file__).resolve().parents[2] / "fixtures" / "coingecko"

#: (id, symbol, name, order of magnitude of the price in USD, of the circulating supply)
COINS = (
    ("bitcoin", "btc", "Bitcoin", 4.8, 7.3),
    ("ethereum", "eth", "Ethereum", 3.4, 8.1),
    ("tether", "usdt", "Tether", 0.0, 11.1),
    ("solana", "sol", "Solana", 2.2, 8.7),
    ("ripple", "xrp", "XRP", -0.3, 10.7),
    ("dogecoin", "doge", "Dogecoin", -1.0, 11.2),
    ("cardano", "ada", "Cardano", -0.4, 10.5),
    ("tron", "trx", "TRON", -0.9, 10.9),
    ("avalanche-2", "avax", "Avalanche", 1.4, 8.6),
    ("chainlink", "link", "Chainlink", 1.2, 8.8),
    ("polkadot", "dot", "Polkadot", 0.8, 9.1),
    ("litecoin", "ltc", "Litecoin", 1.9, 7.9),
    ("stellar", "xlm", "Stellar", -0.9, 10.5),
    ("uniswap", "uni", "Uniswap", 1.0, 8.8),
    ("cosmos", "atom", "Cosmos Hub", 0.8, 8.6),
    ("near", "near", "NEAR Protocol", 0.6, 9.0),
    ("aptos", "apt", "Aptos", 0.9, 8.7),
    ("filecoin", "fil", "Filecoin", 0.6, 8.8),
    ("algorand", "algo", "Algorand", -0.7, 9.9),
    ("tezos", "xtz", "Tezos", -0.1, 9.0),
)


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _round(x: float, digits: int = 6) -> float:
    """CoinGecko-like precision: ~significant digits, no float noise in the JSON."""
    if x == 0:
        return 0.0
    places = max(0, digits - 1 - int(math.floor(math.log10(abs(x)))))
    return round(x, places)


def _chart(rng: random.Random, price: float, supply: float) -> dict[str, list[list[float]]]:
    points = CHART_DAYS * 24 + 1
    start = ANCHOR - timedelta(hours=points - 1)
    prices, caps, volumes = [], [], []
    p = price * math.exp(rng.gauss(0, 0.03))
    for i in range(points):
        ms = int((start + timedelta(hours=i)).timestamp() * 1000)
        p = price if i == points - 1 else p * math.exp(rng.gauss(0, 0.006))
        prices.append([ms, _round(p, 8)])
        caps.append([ms, round(p * supply)])
        volumes.append([ms, round(p * supply * rng.uniform(0.01, 0.08))])
    return {"prices": prices, "market_caps": caps, "total_volumes": volumes}


def generate(seed: int = SEED) -> tuple[list[dict], dict[str, dict]]:
    """The markets list and every coin's chart."""
    rng = random.Random(seed)
    markets, charts = [], {}
    for coin_id, symbol, name, price_mag, supply_mag in COINS:
        price = _round(10 ** (price_mag + rng.uniform(-0.15, 0.15)), 8) if symbol != "usdt" else 1.0
        supply = round(10 ** (supply_mag + rng.uniform(-0.1, 0.1)))
        total = round(supply * rng.uniform(1.0, 1.3))
        cap = round(price * supply)
        change = _round(price * rng.gauss(0, 0.03))
        ath = _round(price * rng.uniform(1.05, 3.0))
        atl = _round(price * rng.uniform(0.001, 0.3))
        charts[coin_id] = _chart(rng, price, supply)
        markets.append({
            "id": coin_id, "symbol": symbol, "name": name,
            "image": f"https://coin-images.coingecko.com/coins/images/{len(markets) + 1}/large/{coin_id}.png",
            "current_price": price, "market_cap": cap, "market_cap_rank": 0,
            "fully_diluted_valuation": round(price * total), "total_volume": round(cap * rng.uniform(0.01, 0.08)),
            "high_24h": _round(price * rng.uniform(1.0, 1.05)), "low_24h": _round(price * rng.uniform(0.95, 1.0)),
            "price_change_24h": change, "price_change_percentage_24h": _round(100 * change / price, 5),
            "market_cap_change_24h": round(change * supply), "market_cap_change_percentage_24h": _round(100 * change / price, 5),
            "circulating_supply": float(supply), "total_supply": float(total), "max_supply": float(total) if rng.random() < 0.4 else None,
            "ath": ath, "ath_change_percentage": _round(100 * (price - ath) / ath, 5),
            "ath_date": _iso(ANCHOR - timedelta(days=rng.randint(30, 1500))),
            "atl": atl, "atl_change_percentage": _round(100 * (price - atl) / atl, 5),
            "atl_date": _iso(ANCHOR - timedelta(days=rng.randint(1500, 4000))),
            "roi": None, "last_updated": _iso(ANCHOR - timedelta(seconds=rng.randint(5, 120))),
        })
    markets.sort(key=lambda m: -m["market_cap"])
    for rank, m in enumerate(markets, 1):
        m["market_cap_rank"] = rank
    return markets, charts


def write(directory: Path = DEFAULT_DIR, seed: int = SEED) -> list[Path]:
    """Write the fixtures into ``directory``; the files written."""
    markets, charts = generate(seed)
    (directory / "market_chart").mkdir(parents=True, exist_ok=True)
    written = [directory / "markets.json"]
    written[0].write_text(json.dumps(markets, indent=1) + "\n")
    for coin_id, chart in charts.items():
        path = directory / "market_chart" / f"{coin_id}.json"
        path.write_text(json.dumps(chart, separators=(",", ":")) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_DIR):
        print(p)
