"""Benchmark: the Feast feature server's start-up time and idle memory against its spec budget.

Starts an embedded Redis, applies the feature repository (the materialisation
step's Feast start-up, timed apart), then starts `feast serve` N times
(default 3) and prints each start-up time (launch to /health answering 200),
the median, the idle memory of the serving process tree 10 s after start
(summed PSS and RSS: gunicorn master + one uvicorn worker), a
/get-online-features latency median over 200 requests, and the budget the
spec gives the component.  Needs the Feast venv (`aether-sandbox features install`).

Usage: python benchmarks/feast_server.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

from sandbox.features.materialize import run_pipeline
from sandbox.features.server import FeatureServer
from sandbox.features.venv import ensure_feast
from sandbox.infra.ports import free_port
from sandbox.infra.redis import EmbeddedRedis
from sandbox.spec.budget import budget_of
from sandbox.spec.loader import default_spec


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    ensure_feast(print)
    budget = budget_of(default_spec().component("feast"))
    root = Path(tempfile.mkdtemp(prefix="aether-feast-bench-"))
    try:
        with EmbeddedRedis(root / "redis", free_port()) as redis:
            repo = root / "feast" / "repo"
            started = time.monotonic()
            run_pipeline("apply", repo, redis_url=redis.url)
            print(f"apply (one Feast start-up of the materialisation step): {time.monotonic() - started:.2f} s")
            startups, memories = [], []
            for run in range(args.runs):
                with FeatureServer(root / "feast", repo, free_port()) as server:
                    startups.append(server.startup_seconds or 0.0)
                    time.sleep(10)
                    memory = server.memory()
                    assert memory is not None
                    memories.append(memory)
                    latencies = []
                    body = json.dumps({"features": ["symbol_volatility_1m:realised_vol_1m"],
                                       "entities": {"symbol": ["BTC/USD"]}}).encode()
                    for _ in range(200):
                        request = urllib.request.Request(server.url + "/get-online-features", body,
                                                         {"Content-Type": "application/json"})
                        t0 = time.perf_counter()
                        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
                            response.read()
                        latencies.append(time.perf_counter() - t0)
                    print(f"run {run + 1}: start-up {startups[-1]:.2f} s, idle memory PSS {memory.pss_mib:.0f} MiB "
                          f"(RSS {memory.rss_mib:.0f} MiB, {memory.processes} processes), "
                          f"get-online-features median {statistics.median(latencies) * 1000:.1f} ms")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    pss = statistics.median(m.pss_mib for m in memories)
    print(f"median start-up {statistics.median(startups):.2f} s; median idle PSS {pss:.0f} MiB "
          f"= {pss / budget.memory_mib.limit:.0%} of the {budget.memory_mib.limit} MiB budget "
          f"(CPU budget {budget.cpu_m.limit}m)")


if __name__ == "__main__":
    main()
