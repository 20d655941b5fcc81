"""Feast after a real replay: venue -> ingest -> Kafka -> kraken-stream-mirror -> materialise -> feature server.

One local sandbox (feast, the ingest and what they depend on) in a private
state directory; the session is replayed through it, mirrored into the
``marketdata`` tables by the workflow, materialised with the CLI, and the
features the running feature server returns are compared with the ones
computed here in Python from the mirrored rows.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import urllib.request
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.features.locate import settings_for

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("features")]

runner = CliRunner()
SESSION = "v2-book10-majors"
FEATURES = ["symbol_quote:mid_price", "symbol_quote:spread", "symbol_volatility_1m:realised_vol_1m",
            "symbol_volume_5m:volume_5m", "symbol_volume_5m:trade_count_5m"]


def cli(*args: str) -> str:
    result = runner.invoke(app, [*args, "--runtime", "local"])
    assert result.exit_code == 0, result.output + (result.stderr if result.stderr_bytes else "")
    return result.stdout


@pytest.fixture(scope="module")
def replayed() -> dict:
    """The sandbox after replay + mirror + materialise: {"url": feature server, "marketdata": DSN, "report": ..}."""
    root = Path(tempfile.mkdtemp(prefix="aether-feast-e2e-"))
    root.chmod(0o711)
    saved = {k: os.environ.get(k) for k in ("AETHER_SANDBOX_HOME", "AETHER_SANDBOX_PORTS")}
    os.environ.update(AETHER_SANDBOX_HOME=str(root), AETHER_SANDBOX_PORTS="dynamic")
    try:
        up = json.loads(cli("up", "--json", "feast", "kraken-ws-ingest"))
        port = next(c["port"] for c in up["components"] if c["name"] == "feast")
        cli("replay", SESSION, "--max")
        mirror = json.loads(cli("workflow", "run", "kraken-stream-mirror", "--json"))
        assert mirror["outcome"] == "ok", mirror
        report = json.loads(cli("features", "materialize", "--json"))
        yield {"url": f"http://127.0.0.1:{port}", "marketdata": settings_for(runtime="local").marketdata_url,
               "report": report}
    finally:
        runner.invoke(app, ["down", "--runtime", "local", "--volumes"])
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(root, ignore_errors=True)


def expected(conn: psycopg.Connection, symbol: str) -> dict[str, float]:
    """docs/feast.md's definitions, in Python over the mirrored rows."""
    tops = conn.execute("SELECT ts, kafka_offset, bid_price, ask_price FROM market_top_of_book WHERE symbol = %s",
                        (symbol,)).fetchall()
    _ts, _off, bid, ask = max(tops, key=lambda r: (r[0], r[1]))
    trades = sorted(conn.execute("SELECT ts, topic, kafka_offset, item, price, qty FROM market_trades "
                                 "WHERE symbol = %s", (symbol,)).fetchall())
    last = trades[-1][0]
    minute = [r[4] for r in trades if r[0] > last - timedelta(seconds=60)]
    returns = [(b / a).ln() for a, b in zip(minute, minute[1:])]
    five = [r for r in trades if r[0] > last - timedelta(seconds=300)]
    return {"mid_price": float((bid + ask) / 2), "spread": float(ask - bid),
            "realised_vol_1m": math.sqrt(float(sum(r * r for r in returns))),
            "volume_5m": float(sum(r[5] for r in five)), "trade_count_5m": len(five)}


def test_feature_server_returns_the_replayed_features(replayed: dict) -> None:
    symbols = ["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "DOGE/USD"]
    assert replayed["report"]["views"]["symbol_quote"]["rows"] == len(symbols)
    body = json.dumps({"features": FEATURES, "entities": {"symbol": symbols}}).encode()
    request = urllib.request.Request(replayed["url"] + "/get-online-features", body,
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        doc = json.load(response)
    got = dict(zip(doc["metadata"]["feature_names"], doc["results"], strict=True))
    with psycopg.connect(replayed["marketdata"]) as conn:
        for i, symbol in enumerate(symbols):
            want = expected(conn, symbol)
            for name, value in want.items():
                assert got[name]["statuses"][i] == "PRESENT", (symbol, name)
                assert got[name]["values"][i] == pytest.approx(value, rel=1e-9, abs=1e-15), (symbol, name)
            assert want["trade_count_5m"] > 10 and want["realised_vol_1m"] > 0  # real windows, not empty ones
