"""Check endpoints under one CPU quota against a bare FastAPI endpoint, in one run (issue #9's target).

Run: ``.venv/bin/python benchmarks/check_endpoints.py [--cpu-m 200] [--seconds 8] [--concurrency 16]
[--only policy,risk] [--profile-dir DIR]``

Starts embedded PostgreSQL, Redis and NATS, the trading venue, auth-,
universe-, secrets-, policy-, risk-, fees- and config-service, and a bare
FastAPI app (``benchmarks/kit_overhead.py --serve bare``: uvicorn, uvloop,
httptools, ``GET /ping``).  Each process under test is moved, in turn, into a
cgroup with ``--cpu-m`` millicores (the same quota for every target, the bare
app included; memory: the component's request from the platform spec, 512 MiB
for bare) and driven closed-loop by ``--concurrency`` keep-alive connections
for ``--seconds`` after a warm-up:

* bare           ``GET /ping``
* policy-service ``POST /v1/check-order`` (an allowed order: approved instrument, trading key)
* risk-service   ``POST /v1/check-order``
* fees-service   ``POST /v1/estimate``
* config-service ``GET /v1/config/{ns}/{key}``
* universe-service ``GET /v1/instruments/{symbol}``
* auth-service   ``POST /v1/introspect`` (a service token as caller)

Every request but bare's carries a real access token (verified, revocation
checked). Each check endpoint is a hot route of its service (``sandbox.services.kit.hot``):
the probe request goes through FastAPI, which teaches the kit the path, and the
load then takes the fast path; the session check answers from the cache the
session Redis invalidates (``sandbox.services.kit.sessions``).  Reported per target: requests/s, the ratio to bare's requests/s
in this run (the target is >= 50%), p50/p99 latency, CPU time per request
(cgroup accounting), and the cgroup's throttled periods (when they are most of
the periods, the quota is what binds).  ``--profile-dir`` samples each service
with py-spy during its phase (collapsed stacks).  Everything binds 127.0.0.1
and is stopped by PID; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

from oms_orders import ASSETPAIRS, VENUE, Procs  # noqa: E402

SYMBOL = "XBT/USD"
ACCOUNT = "bench-acct"


# ---- load ---------------------------------------------------------------------------------------


def _request(url: str, method: str, path: str, token: str | None, body: Any) -> bytes:
    hostport = url.split("//", 1)[1]
    lines = [f"{method} {path} HTTP/1.1", f"Host: {hostport}", "Connection: keep-alive"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    raw = json.dumps(body).encode() if body is not None else b""
    if raw:
        lines += ["Content-Type: application/json", f"Content-Length: {len(raw)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


async def _worker(host: str, port: int, request: bytes, stop_at: float, latencies: list[float],
                  statuses: dict[int, int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            statuses[status] = statuses.get(status, 0) + 1
    finally:
        writer.close()


async def drive(url: str, request: bytes, seconds: float, concurrency: int, group: Any) -> dict[str, Any]:
    """Closed loop: ``concurrency`` connections back to back; returns rate, percentiles, CPU and throttling."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    result: dict[str, Any] = {}
    for phase, duration in (("warm-up", min(2.0, seconds / 3)), ("measure", seconds)):
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        cpu0, thr0 = group.cpu_ns(), group.throttling()
        started = time.perf_counter()
        await asyncio.gather(*(_worker(host, int(port), request, started + duration, latencies, statuses)
                               for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu, thr = group.cpu_ns() - cpu0, group.throttling()
        latencies.sort()
        n = len(latencies)

        def pct(p: float) -> float:
            return latencies[min(n - 1, int(p * n))] * 1000 if n else float("nan")

        result = {"rps": n / elapsed, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "requests": n, "statuses": statuses,
                  "cpu_us_per_req": cpu / 1000 / max(n, 1), "cpu_m_used": cpu / 1e6 / elapsed,
                  "periods": thr[0] - thr0[0], "throttled": thr[1] - thr0[1]}
    return result


# ---- cgroups ------------------------------------------------------------------------------------


class Group:
    """A benchmark cgroup with a CPU quota and a memory limit; processes are moved in and out by PID."""

    def __init__(self, name: str, cpu_m: int, memory_mib: int) -> None:
        from sandbox.runtimes.local.cgroups import Cgroup, detect

        hierarchy, why = detect()
        if hierarchy is None:
            raise SystemExit(f"no usable cgroup: {why} (the comparison needs the quota)")
        self.h = hierarchy
        self.cg = Cgroup(hierarchy, f"aether-bench/{name}-{secrets.token_hex(3)}")
        self.cg.create(memory_mib=memory_mib)
        self.cg.limit_cpu(cpu_m)

    def add(self, pid: int) -> None:
        self.cg.add(pid)

    def cpu_ns(self) -> int:
        if self.h.version == 1:
            return int((self.cg.cpuacct_dir / "cpuacct.usage").read_text())
        for line in (self.cg.cpu_dir / "cpu.stat").read_text().splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) * 1000
        return 0

    def throttling(self) -> tuple[int, int]:
        stat = dict(line.split() for line in (self.cg.cpu_dir / "cpu.stat").read_text().splitlines())
        return int(stat.get("nr_periods", 0)), int(stat.get("nr_throttled", 0))

    def remove(self, pids: list[int]) -> None:
        """Move ``pids`` back to the root groups and delete this one (and aether-bench/ when empty)."""
        for pid in pids:
            for d in {self.h.cpu, self.h.memory, *( [self.h.cpuacct] if self.h.cpuacct else [])}:
                try:
                    (d / "cgroup.procs").write_text(str(pid))
                except OSError:
                    pass
        for d in {self.cg.cpu_dir, self.cg.cpuacct_dir, self.cg.memory_dir}:
            for directory in (d, d.parent):
                try:
                    directory.rmdir()
                except OSError:
                    pass


# ---- orchestration ------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-m", type=int, default=200, help="CPU quota of every target (default 200)")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--only", default="", help="comma-separated subset of policy,risk,fees,config,universe,auth")
    parser.add_argument("--profile-dir", help="py-spy each service during its phase; collapsed stacks here")
    parser.add_argument("--keep-logs", action="store_true")
    args = parser.parse_args()

    from sandbox.infra.nats import EmbeddedNats
    from sandbox.infra.ports import free_port
    from sandbox.infra.postgres import EmbeddedPostgres
    from sandbox.infra.redis import EmbeddedRedis
    from sandbox.spec.loader import default_spec

    spec = default_spec()
    only = set(filter(None, args.only.split(",")))
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    root = Path(tempfile.mkdtemp(prefix="aether-checks-bench-"))
    root.chmod(0o711)
    procs = Procs(root)
    results: dict[str, dict[str, Any]] = {}
    try:
        with EmbeddedPostgres(root / "pg", free_port()) as pg, EmbeddedRedis(root / "redis", free_port()) as redis, \
                EmbeddedNats(root / "nats", free_port(), free_port()) as nats:
            names = ("auth", "universe", "secrets", "policy", "risk", "fees", "config")
            accounts = {f"{n}-service": secrets.token_urlsafe(24) for n in names}
            accounts["bench"] = secrets.token_urlsafe(24)
            admin_pw = secrets.token_urlsafe(18)
            for db in ("auth", "universe", "secrets", "policy", "rc", "rd", "re", "fees", "config"):
                pg.create_database(db)
            auth_url, auth = procs.service("auth", {
                "AUTH_DATABASE_URL": pg.dsn("auth"), "AUTH_REDIS_URL": redis.url, "AETHER_SESSION_REDIS_URL": redis.url,
                "AUTH_BOOTSTRAP_ADMIN_PASSWORD": admin_pw, "AUTH_SERVICE_ACCOUNTS": json.dumps(accounts)})
            admin = httpx.post(f"{auth_url}/v1/login", json={"username": "admin", "password": admin_pw}).json()[
                "access_token"]
            hdr = {"Authorization": f"Bearer {admin}"}

            def common(name: str) -> dict[str, str]:
                return {"AETHER_AUTH_URL": auth_url, "AETHER_SESSION_REDIS_URL": redis.url,
                        "AETHER_SERVICE_CLIENT_ID": f"{name}-service",
                        "AETHER_SERVICE_CLIENT_SECRET": accounts[f"{name}-service"]}

            venue_port = free_port()
            venue_url = f"http://127.0.0.1:{venue_port}"
            procs.spawn("venue", [sys.executable, "-c", VENUE, str(ASSETPAIRS), str(venue_port)], {},
                        ready_url=venue_url)
            universe_url, universe = procs.service("universe", {
                **common("universe"), "UNIVERSE_DATABASE_URL": pg.dsn("universe"), "UNIVERSE_VENUE_URL": venue_url})
            httpx.post(f"{universe_url}/v1/instruments/XBT%2FUSD/approve", json={"reason": "benchmark"},
                       headers=hdr, timeout=10).raise_for_status()
            secrets_url, _ = procs.service("secrets", {
                **common("secrets"), "SECRETS_DATABASE_URL": pg.dsn("secrets"),
                "SECRETS_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()})
            httpx.post(f"{secrets_url}/v1/accounts/{ACCOUNT}/kraken-keys", headers=hdr, json={
                "label": "bench", "api_key": base64.b64encode(os.urandom(42)).decode(),
                "private_key": base64.b64encode(os.urandom(64)).decode(),
                "permissions": ["query_funds", "trade"]}, timeout=10).raise_for_status()
            policy_url, policy = procs.service("policy", {
                **common("policy"), "POLICY_DATABASE_URL": pg.dsn("policy"), "POLICY_UNIVERSE_URL": universe_url,
                "POLICY_SECRETS_URL": secrets_url, "POLICY_VENUE_URL": venue_url})
            httpx.post(f"{policy_url}/v1/refresh", headers=hdr, timeout=10)
            risk_url, risk = procs.service("risk", {
                **common("risk"), "RISK_COMPLIANCE_DATABASE_URL": pg.dsn("rc"),
                "RISK_DIVERSIFICATION_DATABASE_URL": pg.dsn("rd"), "RISK_ESG_DATABASE_URL": pg.dsn("re"),
                "RISK_NATS_URL": nats.url})
            fees_url, fees = procs.service("fees", {**common("fees"), "FEES_DATABASE_URL": pg.dsn("fees")})
            pairs = json.loads(ASSETPAIRS.read_text())["result"]["XXBTZUSD"]
            httpx.put(f"{fees_url}/v1/schedules/XBT%2FUSD", headers=hdr, json={
                "quote": "USD", "quote_decimals": pairs["cost_decimals"], "fees": pairs["fees"],
                "fees_maker": pairs["fees_maker"]}).raise_for_status()
            config_url, config = procs.service("config", {**common("config"), "CONFIG_DATABASE_URL": pg.dsn("config"),
                                                          "CONFIG_NATS_URL": nats.url,
                                                          "CONFIG_CACHE_DIR": str(root / "config-cache")})
            httpx.put(f"{config_url}/v1/config/bench/key-1", headers=hdr,
                      json={"value": {"threshold": 1, "enabled": True, "note": "benchmark"}}).raise_for_status()
            bare_port = free_port()
            bare = procs.spawn("bare", [sys.executable, str(HERE / "kit_overhead.py"), "--serve", "bare"],
                               {"AETHER_PORT": str(bare_port)}, ready_url=f"http://127.0.0.1:{bare_port}")
            service_token = httpx.post(f"{auth_url}/v1/service-tokens", json={
                "client_id": "bench", "client_secret": accounts["bench"]}).json()["access_token"]
            order = {"account": ACCOUNT, "symbol": SYMBOL, "side": "buy", "qty": "0.001", "price": "29000.0"}
            targets = [
                ("bare", "bare", f"http://127.0.0.1:{bare_port}", bare.pid, "GET", "/ping", None, None),
                ("policy", "policy-service", policy_url, policy.pid, "POST", "/v1/check-order", admin,
                 {**order, "type": "limit"}),
                ("risk", "risk-service", risk_url, risk.pid, "POST", "/v1/check-order", admin, order),
                ("fees", "fees-service", fees_url, fees.pid, "POST", "/v1/estimate", admin,
                 {**order, "qty": "0.01"}),
                ("config", "config-service", config_url, config.pid, "GET", "/v1/config/bench/key-1", admin, None),
                ("universe", "universe-service", universe_url, universe.pid, "GET", "/v1/instruments/XBT%2FUSD",
                 admin, None),
                ("auth", "auth-service", auth_url, auth.pid, "POST", "/v1/introspect", service_token,
                 {"token": admin}),
            ]
            for label, component, url, pid, method, path, token, body in targets:
                if only and label != "bare" and label not in only:
                    continue
                probe = httpx.request(method, url + path, json=body, headers={"Authorization": f"Bearer {token}"}
                                      if token else {}, timeout=10)
                if probe.status_code != 200:
                    print(f"{label}: {method} {path} answered {probe.status_code}: {probe.text[:300]}", file=sys.stderr)
                memory = 512 if component == "bare" else (spec.component(component).requests.memory_mib or 512)
                group = Group(label, args.cpu_m, memory)
                spy = None
                try:
                    group.add(pid)
                    if args.profile_dir:
                        Path(args.profile_dir).mkdir(parents=True, exist_ok=True)
                        spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(pid), "-r", "200", "-f", "raw",
                                                "-o", str(Path(args.profile_dir) / f"{label}.txt")],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    request = _request(url, method, path, token, body)
                    results[label] = asyncio.run(drive(url, request, args.seconds, args.concurrency, group))
                    results[label]["endpoint"] = f"{method} {path}"
                    results[label]["sample"] = probe.text[:120]
                finally:
                    if spy is not None:
                        os.kill(spy.pid, signal.SIGINT)
                        spy.wait(30)
                    group.remove([pid])
            procs.stop_all()
    finally:
        procs.stop_all()
        if args.keep_logs:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    bare_rps = results["bare"]["rps"]
    print(f"\ncheck endpoints, each alone under a {args.cpu_m}m CPU quota (cgroup), {args.concurrency} keep-alive "
          f"connections, {args.seconds:g} s each; {os.cpu_count()} CPUs, load average before {load_before}")
    print(f"{'target':<9} {'endpoint':<30} {'req/s':>7} {'vs bare':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'CPU us/req':>10} {'CPU m':>6} {'throttled':>9}  statuses")
    for label, r in results.items():
        thr = f"{r['throttled'] / r['periods']:.0%}" if r["periods"] else "-"
        print(f"{label:<9} {r['endpoint'][:30]:<30} {r['rps']:>7.0f} {r['rps'] / bare_rps:>7.0%} {r['p50_ms']:>7.2f} "
              f"{r['p99_ms']:>7.2f} {r['cpu_us_per_req']:>10.0f} {r['cpu_m_used']:>6.0f} {thr:>9}  {r['statuses']}")


if __name__ == "__main__":
    main()
