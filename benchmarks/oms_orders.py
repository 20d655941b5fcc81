"""Orders per second and latency of one oms-service replica, on loopback, bounded in count and time.

Run: ``.venv/bin/python benchmarks/oms_orders.py [--rate 100] [--seconds 10] [--checks risk,fees] [--replicas 2]
[--cpu-m 200] [--max-concurrency 16] [--pyspy FILE] [--cpu-sample FILE]``

Starts embedded PostgreSQL, Redis, NATS and Kafka (Tansu), auth-service, the
trading venue (``sandbox.venue.trading`` with rate limits off, a deep synthetic
XBT/USD book) and one oms-service; with ``--checks`` also risk-service and
fees-service (``policy`` adds universe-, secrets- and policy-service), which
the OMS then asks for every order. With ``--cpu-m`` the OMS process runs in a
cgroup with that CPU quota (and 512 MiB), as the platform budgets it (needs a
writable cgroup; otherwise measured unconfined and said so).

Every order is a marketable limit order for 0.001 XBT (buys and sells
alternate), so each one is checked, sent to the venue, acknowledged, filled,
and its fill recorded and published: the whole path.

With ``--replicas N`` N OMS processes share the database, Redis, Kafka and the
venue key (each in its own cgroup with ``--cpu-m``) and the load generator
sends each order to the next replica in turn, as a round-robin Service would;
CPU per order is then all replicas' CPU over all orders.

Two phases:

* **open loop** at ``--rate`` orders/s for ``--seconds`` (the target load):
  latency from each order's scheduled send time to its answer, so queueing
  counts; achieved rate; final states.
* **closed loop** with ``--max-concurrency`` clients for ``--seconds``: the
  most one replica sustains here.

Reported for each: orders/s, p50/p99/max latency, answer statuses, and the OMS
process's CPU time per order (from /proc), which gives the orders/s a 200m
quota allows (0.2 s / CPU per order), split by OMS thread (the event loop,
librdkafka's threads...) with the kernel's share. Under a CPU quota, wall-clock
profilers (py-spy, cProfile's default timer) charge the throttled pauses to
whatever was running, mostly socket writes: ``--cpu-sample`` samples the OMS's
Python stacks per millisecond of CPU time instead (collapsed stacks, as py-spy's
raw format), ``--profile`` uses cProfile with the thread's CPU clock. The
load generator is a minimal keep-alive HTTP/1.1 client on asyncio streams. Everything binds 127.0.0.1 and
is stopped by PID before exit; nothing is asserted.
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
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ASSETPAIRS = REPO / "fixtures" / "kraken" / "assetpairs.json"
PROFILED = """
import cProfile, signal, sys, time
from sandbox.services.kit.run import run
from sandbox.services.oms.app import create_app
# uvicorn re-raises SIGTERM after its graceful shutdown: exit normally so the profile is written
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
# The event loop thread's CPU time, not wall time: under a CPU quota the throttled pauses
# would otherwise be charged to whatever call was running (mostly socket writes).
profiler = cProfile.Profile(time.thread_time)
profiler.enable()
try:
    run(create_app)
finally:
    profiler.disable()
    profiler.dump_stats(sys.argv[1])
"""
CPU_SAMPLED = """
import collections, gc, json, signal, sys, time
from sandbox.services.kit.run import run
from sandbox.services.oms.app import create_app
# A CPU-time sampler: ITIMER_PROF fires per millisecond of the process's CPU time (never while it
# waits or is throttled), and the handler records the main thread's Python stack at that moment.
# Garbage collections are counted and timed per generation too (a full one stalls the event loop).
stacks = collections.Counter()
collections_ = {"0": [0, 0.0], "1": [0, 0.0], "2": [0, 0.0]}
started = [0.0]

def on_gc(phase, info):
    if phase == "start":
        started[0] = time.thread_time()
    else:
        entry = collections_[str(info["generation"])]
        entry[0] += 1
        entry[1] += (time.thread_time() - started[0]) * 1000

def sample(_signum, frame):
    names = []
    while frame is not None:
        code = frame.f_code
        names.append(f"{code.co_qualname} ({code.co_filename.rsplit('site-packages/', 1)[-1]}:{frame.f_lineno})")
        frame = frame.f_back
    stacks[";".join(reversed(names))] += 1

def dump(*_):
    signal.setitimer(signal.ITIMER_PROF, 0)
    gc.callbacks.remove(on_gc)
    with open(sys.argv[1], "w") as out:
        out.writelines(f"{k} {v}\\n" for k, v in stacks.items())
    with open(sys.argv[1] + ".gc.json", "w") as out:
        json.dump({g: {"count": c, "cpu_ms": round(ms, 1)} for g, (c, ms) in collections_.items()}, out)

def start(*_):
    stacks.clear()
    gc.callbacks.append(on_gc)
    signal.setitimer(signal.ITIMER_PROF, 0.001, 0.001)

signal.signal(signal.SIGPROF, sample)
signal.signal(signal.SIGUSR1, dump)
signal.signal(signal.SIGUSR2, start)
run(create_app)
"""
VENUE = """
import sys, uvicorn
from sandbox.venue.trading.app import create_trading_app
app = create_trading_app(sys.argv[1], seed=1, rate_limits=False)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False,
            loop="uvloop", http="httptools")
"""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_cpu_seconds(pid: int) -> float:
    """System (kernel) CPU time of a process so far: its share tells syscalls from Python work."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[12]) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time so far of each of a process's threads, summed by thread name (``comm``).

    Says where the per-order CPU goes that a Python profiler cannot see: librdkafka's
    native threads, the default executor, the event loop's own thread.
    """
    totals: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            raw = (task / "stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = raw[raw.index("(") + 1:raw.rindex(")")]
        fields = raw.rsplit(")", 1)[1].split()
        totals[name] = totals.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return totals


def replicas_cpu(pids: list[int]) -> list[float]:
    """:func:`cpu_seconds` of each replica."""
    return [cpu_seconds(pid) for pid in pids]


def replicas_threads(pids: list[int]) -> dict[str, float]:
    """:func:`thread_cpu_seconds` summed over the replicas, by thread name."""
    totals: dict[str, float] = {}
    for pid in pids:
        for name, cpu in thread_cpu_seconds(pid).items():
            totals[name] = totals.get(name, 0.0) + cpu
    return totals


def thread_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per-thread-name CPU seconds spent between two :func:`thread_cpu_seconds` readings."""
    return {name: after[name] - before.get(name, 0.0) for name in after if after[name] - before.get(name, 0.0) > 0}


# ---- processes --------------------------------------------------------------------------------


class Procs:
    """Started subprocesses, stopped by PID in reverse order."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.base_env = {k: v for k, v in os.environ.items()
                         if not k.startswith(("AETHER_", "AUTH_", "OMS_", "RISK_", "FEES_", "KRAKEN_", "POLICY_",
                                              "UNIVERSE_", "SECRETS_"))}
        self.base_env["PYTHONPATH"] = str(REPO)

    def spawn(self, name: str, argv: list[str], env: dict[str, str], *, preexec: Any = None,
              ready_url: str | None = None) -> subprocess.Popen[bytes]:
        log = self.root / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, env={**self.base_env, **env}, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=preexec)
        self.procs.append(proc)
        if ready_url:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited early:\n{log.read_text()[-3000:]}")
                try:
                    if httpx.get(f"{ready_url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready:\n{log.read_text()[-3000:]}")
                time.sleep(0.1)
        return proc

    def service(self, name: str, env: dict[str, str], argv: list[str] | None = None, log_name: str | None = None,
                **kw: Any) -> tuple[str, subprocess.Popen[bytes]]:
        from sandbox.infra.ports import free_port

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = self.spawn(log_name or name, argv or [sys.executable, "-m", f"sandbox.services.{name}"],
                          {"AETHER_SERVICE_NAME": f"{name}-service", "AETHER_PORT": str(port),
                           "AETHER_LOG_LEVEL": "warning", **env}, ready_url=url, **kw)
        return url, proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    print(f"pid {proc.pid} ({proc.args[:3]}) did not stop within 15 s: killed", file=sys.stderr)
                    os.kill(proc.pid, signal.SIGKILL)
                    proc.wait(5)


def oms_cgroup(cpu_m: int) -> tuple[Any, str]:
    """A cgroup with ``cpu_m`` millicores and 512 MiB for the OMS, or (None, why not)."""
    from sandbox.runtimes.local.cgroups import Cgroup, detect

    hierarchy, why = detect()
    if hierarchy is None:
        return None, why
    group = Cgroup(hierarchy, f"aether-bench/oms-{secrets.token_hex(3)}")
    try:
        group.create(memory_mib=512)
        group.limit_cpu(cpu_m)
    except OSError as exc:
        return None, f"cannot create a cgroup: {exc}"
    return group, f"{hierarchy.describe()}, {cpu_m}m / 512 MiB"


# ---- load -------------------------------------------------------------------------------------


class Client:
    """A pool of keep-alive connections posting orders; with several replicas' URLs, each order goes to the next
    replica in turn (as a round-robin Service would send them)."""

    def __init__(self, urls: list[str], token: str, size: int) -> None:
        self.origins = []
        for url in urls:
            host, port = url.split("//", 1)[1].rsplit(":", 1)
            self.origins.append((host, int(port)))
        self.token = token
        self.size = size
        self.idle: list[asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = [
            asyncio.Queue() for _ in urls]
        self.seq = 0
        self.turn = 0

    async def open(self) -> None:
        for (host, port), idle in zip(self.origins, self.idle):
            for _ in range(self.size):
                idle.put_nowait(await asyncio.open_connection(host, port))

    async def close(self) -> None:
        for idle in self.idle:
            while not idle.empty():
                _, writer = idle.get_nowait()
                writer.close()

    def body(self) -> bytes:
        self.seq += 1
        side = "buy" if self.seq % 2 else "sell"
        price = "30010.0" if side == "buy" else "29990.0"
        doc = {"account": f"bench-{self.seq % 8}", "client_order_id": f"b{os.getpid()}-{time.time_ns()}-{self.seq}",
               "symbol": "XBT/USD", "side": side, "type": "limit", "qty": "0.001", "price": price,
               "strategy": None}
        return json.dumps({k: v for k, v in doc.items() if v is not None}).encode()

    async def post(self, get: str | None = None, replica: int | None = None) -> tuple[int, dict[str, Any]]:
        if replica is None:
            replica = self.turn
            self.turn = (self.turn + 1) % len(self.origins)
        host, port = self.origins[replica]
        idle = self.idle[replica]
        if get:
            head, body = (f"GET {get} HTTP/1.1\r\nHost: {host}:{port}\r\n"
                          f"Authorization: Bearer {self.token}\r\n\r\n").encode(), b""
        else:
            body = self.body()
            head = (f"POST /v1/orders HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {self.token}\r\n"
                    f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        reader, writer = await idle.get()
        try:
            writer.write(head + body)
            try:
                raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if exc.partial:
                    raise
                # Closed while idle (the server's keep-alive timeout, at low rates): send again on a new one.
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                writer.write(head + body)
                raw = await reader.readuntil(b"\r\n\r\n")
            status = int(raw[9:12])
            length = 0
            for line in raw.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            payload = await reader.readexactly(length) if length else b""
        except Exception:
            writer.close()
            reader, writer = await asyncio.open_connection(host, port)
            raise
        finally:
            idle.put_nowait((reader, writer))
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, {}


def summarise(latencies: list[float], statuses: list[int], states: list[str], elapsed: float, cpu: float) -> dict[str, Any]:
    latencies = sorted(latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

    count = len(latencies)
    return {
        "orders": count, "rate": count / elapsed if elapsed else 0.0, "p50_ms": pct(0.5), "p99_ms": pct(0.99),
        "max_ms": latencies[-1] * 1000 if latencies else float("nan"),
        "mean_ms": statistics.fmean(latencies) * 1000 if latencies else float("nan"),
        "statuses": {s: statuses.count(s) for s in sorted(set(statuses))},
        "states": {s: states.count(s) for s in sorted(set(states))},
        "cpu_us_per_order": cpu / max(count, 1) * 1e6,
    }


async def open_loop(client: Client, rate: float, seconds: float, pids: list[int],
                    groups: list[Any], settle_s: float = 0.0) -> dict[str, Any]:
    """``rate`` orders/s for ``seconds``; latency from each order's scheduled time. With the OMS's cgroups,
    also the CFS periods each replica was throttled in and, per second of the run, the orders slower than 100 ms.
    The CPU is read ``settle_s`` after the last answer (work the orders left behind: other replicas' held events)."""
    latencies: list[float] = []
    slow_by_second: dict[int, int] = {}
    statuses: list[int] = []
    states: list[str] = []
    errors = 0

    async def one(scheduled: float) -> None:
        nonlocal errors
        try:
            status, doc = await client.post()
        except Exception:  # noqa: BLE001 - counted
            errors += 1
            return
        latency = time.perf_counter() - scheduled
        latencies.append(latency)
        if latency > 0.1:
            second = int(scheduled - start)
            slow_by_second[second] = slow_by_second.get(second, 0) + 1
        statuses.append(status)
        states.append(doc.get("state", doc.get("error", "?")))

    total = int(rate * seconds)
    cpu0, sys0, threads0 = replicas_cpu(pids), sum(map(system_cpu_seconds, pids)), replicas_threads(pids)
    throttled0 = [group.throttled() for group in groups]
    start = time.perf_counter()
    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    await asyncio.sleep(settle_s)
    by_replica = [after - before for before, after in zip(cpu0, replicas_cpu(pids))]
    cpu = sum(by_replica)
    out = summarise(latencies, statuses, states, elapsed, cpu)
    out["errors"] = errors
    out["system_share"] = (sum(map(system_cpu_seconds, pids)) - sys0) / cpu if cpu else float("nan")
    out["threads"] = thread_delta(threads0, replicas_threads(pids))
    out["replica_cpu_m"] = [c / elapsed * 1000 for c in by_replica]  # what the load costs per second of it
    if groups:
        out["throttled_periods"] = [group.throttled() - t0 for group, t0 in zip(groups, throttled0)]
    out["slow_by_second"] = dict(sorted(slow_by_second.items()))
    return out


async def closed_loop(client: Client, concurrency: int, seconds: float, pids: list[int],
                      get: str | None = None) -> dict[str, Any]:
    """``concurrency`` clients back to back for ``seconds`` (orders, or ``GET get``)."""
    latencies: list[float] = []
    statuses: list[int] = []
    states: list[str] = []
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            status, doc = await client.post(get, 0 if get else None)
            latencies.append(time.perf_counter() - t0)
            statuses.append(status)
            states.append(doc.get("state", doc.get("error", "?")))

    cpu0, threads0 = sum(replicas_cpu(pids)), replicas_threads(pids)
    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out = summarise(latencies, statuses, states, time.perf_counter() - start, sum(replicas_cpu(pids)) - cpu0)
    out["threads"] = thread_delta(threads0, replicas_threads(pids))
    return out


def rss_mib(pid: int) -> float:
    """Resident memory of a process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_perf(pid: int, root: Path) -> subprocess.Popen[bytes] | None:
    """``perf stat`` on the OMS process (instructions are not inflated by other load on the machine)."""
    if shutil.which("perf") is None:
        return None
    out = root / "perf.txt"
    return subprocess.Popen(["perf", "stat", "-x", ",", "-o", str(out), "-e",
                             "task-clock,instructions,context-switches,raw_syscalls:sys_enter", "-p", str(pid)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_perf(proc: subprocess.Popen[bytes], root: Path) -> dict[str, float]:
    """Stop ``perf stat`` and read its counters."""
    os.kill(proc.pid, signal.SIGINT)
    proc.wait(10)
    counters: dict[str, float] = {}
    for line in (root / "perf.txt").read_text().splitlines():
        parts = line.split(",")
        if len(parts) > 2 and parts[0] and parts[0][0].isdigit():
            counters[parts[2]] = float(parts[0])
    return counters


# ---- orchestration ------------------------------------------------------------------------------


def main() -> None:
    """Start everything, run both phases, print the results, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop orders/s (default 100)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each phase (default 10)")
    parser.add_argument("--max-concurrency", type=int, default=16, help="closed-loop clients (0 = skip the phase)")
    parser.add_argument("--checks", default="risk,fees", help="upstreams: any of policy,risk,fees or 'none'")
    parser.add_argument("--cpu-m", type=int, default=0, help="run the OMS under this CPU quota (e.g. 200)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="OMS replicas (each in its own cgroup with --cpu-m; orders sent to each in turn)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log directory")
    parser.add_argument("--profile", help="write a cProfile of the OMS process to this file")
    parser.add_argument("--pyspy", help="sample the OMS with py-spy during both phases (collapsed stacks to this "
                                        "file); only samples holding the GIL, so the stacks show CPU, not waiting")
    parser.add_argument("--cpu-sample", help="sample the OMS's Python stacks per millisecond of CPU time during the "
                                             "open loop (collapsed stacks to this file)")
    parser.add_argument("--strace", action="store_true", help="count the OMS's syscalls by kind in the open loop")
    parser.add_argument("--perf", action="store_true",
                        help="also count the OMS's instructions and syscalls per order (perf stat) in the open loop")
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    if args.replicas > 1 and (args.profile or args.cpu_sample or args.pyspy or args.perf or args.strace):
        print("note: the profilers watch the first replica only, and their cost is in its CPU", file=sys.stderr)
    checks = set() if args.checks == "none" else set(args.checks.split(","))

    from sandbox.infra.kafka import EmbeddedKafka
    from sandbox.infra.nats import EmbeddedNats
    from sandbox.infra.ports import free_port
    from sandbox.infra.postgres import EmbeddedPostgres
    from sandbox.infra.redis import EmbeddedRedis

    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    root = Path(tempfile.mkdtemp(prefix="aether-oms-bench-"))
    root.chmod(0o711)
    procs = Procs(root)
    groups: list[Any] = []
    group_note = "unconfined"
    results: dict[str, Any] = {}
    try:
        with EmbeddedPostgres(root / "pg", free_port()) as pg, EmbeddedRedis(root / "redis", free_port()) as redis, \
                EmbeddedNats(root / "nats", free_port(), free_port()) as nats, \
                EmbeddedKafka(root / "kafka", free_port()) as kafka:
            kafka.create_topics(["oms.orders", "oms.fills"], partitions=4)
            accounts = {c: secrets.token_urlsafe(24) for c in ("oms-service", "risk-service", "fees-service",
                                                               "policy-service", "universe-service", "secrets-service")}
            admin_pw = secrets.token_urlsafe(18)
            pg.create_database("auth")
            auth_url, _ = procs.service("auth", {
                "AUTH_DATABASE_URL": pg.dsn("auth"), "AUTH_REDIS_URL": redis.url, "AETHER_SESSION_REDIS_URL": redis.url,
                "AUTH_BOOTSTRAP_ADMIN_PASSWORD": admin_pw, "AUTH_SERVICE_ACCOUNTS": json.dumps(accounts)})
            admin = httpx.post(f"{auth_url}/v1/login", json={"username": "admin", "password": admin_pw}).json()[
                "access_token"]

            def common(name: str) -> dict[str, str]:
                return {"AETHER_AUTH_URL": auth_url, "AETHER_SESSION_REDIS_URL": redis.url,
                        "AETHER_SERVICE_CLIENT_ID": f"{name}-service",
                        "AETHER_SERVICE_CLIENT_SECRET": accounts[f"{name}-service"]}

            venue_port = free_port()
            venue_url = f"http://127.0.0.1:{venue_port}"
            procs.spawn("venue", [sys.executable, "-c", VENUE, str(ASSETPAIRS), str(venue_port)], {},
                        ready_url=venue_url)
            key, secret = secrets.token_urlsafe(42), base64.b64encode(os.urandom(64)).decode()
            httpx.post(f"{venue_url}/admin/accounts", json={
                "balances": {"ZUSD": "1000000000", "XXBT": "100000"}, "api_key": key, "api_secret": secret,
                "tier": "pro"}).raise_for_status()
            httpx.put(f"{venue_url}/admin/book/XBTUSD", json={
                "bids": [["29990.0", "1000000"]], "asks": [["30010.0", "1000000"]]}).raise_for_status()
            creds = root / "kraken"
            creds.mkdir()
            (creds / "api_key").write_text(key)
            (creds / "api_secret").write_text(secret)

            upstream_env: dict[str, str] = {}
            if "risk" in checks:
                for db in ("rc", "rd", "re"):
                    pg.create_database(db)
                url, _ = procs.service("risk", {
                    **common("risk"), "RISK_COMPLIANCE_DATABASE_URL": pg.dsn("rc"),
                    "RISK_DIVERSIFICATION_DATABASE_URL": pg.dsn("rd"), "RISK_ESG_DATABASE_URL": pg.dsn("re"),
                    "RISK_KAFKA_BOOTSTRAP": kafka.bootstrap, "RISK_NATS_URL": nats.url})
                upstream_env["OMS_RISK_URL"] = url
            if "fees" in checks:
                pg.create_database("fees")
                url, _ = procs.service("fees", {**common("fees"), "FEES_DATABASE_URL": pg.dsn("fees"),
                                                "FEES_KAFKA_BOOTSTRAP": kafka.bootstrap})
                pairs = json.loads(ASSETPAIRS.read_text())["result"]["XXBTZUSD"]
                httpx.put(f"{url}/v1/schedules/XBT%2FUSD", headers={"Authorization": f"Bearer {admin}"}, json={
                    "quote": "USD", "quote_decimals": pairs["cost_decimals"], "fees": pairs["fees"],
                    "fees_maker": pairs["fees_maker"]}).raise_for_status()
                upstream_env["OMS_FEES_URL"] = url
            if "policy" in checks:
                for db in ("universe", "secrets", "policy"):
                    pg.create_database(db)
                universe_url, _ = procs.service("universe", {**common("universe"),
                                                             "UNIVERSE_DATABASE_URL": pg.dsn("universe"),
                                                             "UNIVERSE_VENUE_URL": venue_url})
                httpx.post(f"{universe_url}/v1/instruments/XBT%2FUSD/approve", json={"reason": "benchmark"},
                           headers={"Authorization": f"Bearer {admin}"}, timeout=10).raise_for_status()
                secrets_url, _ = procs.service("secrets", {**common("secrets"), "SECRETS_DATABASE_URL": pg.dsn("secrets"),
                                                           "SECRETS_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode()})
                for i in range(8):
                    httpx.post(f"{secrets_url}/v1/accounts/bench-{i}/kraken-keys", headers={
                        "Authorization": f"Bearer {admin}"}, json={
                        "label": "bench", "api_key": base64.b64encode(os.urandom(42)).decode(),
                        "private_key": base64.b64encode(os.urandom(64)).decode(),
                        "permissions": ["query_funds", "trade"]}, timeout=10).raise_for_status()
                url, _ = procs.service("policy", {**common("policy"), "POLICY_DATABASE_URL": pg.dsn("policy"),
                                                  "POLICY_UNIVERSE_URL": universe_url, "POLICY_SECRETS_URL": secrets_url,
                                                  "POLICY_VENUE_URL": venue_url})
                upstream_env["OMS_POLICY_URL"] = url

            pg.create_database("oms")
            replicas: list[tuple[str, subprocess.Popen[bytes]]] = []
            for index in range(args.replicas):
                group = None
                if args.cpu_m:
                    group, group_note = oms_cgroup(args.cpu_m)
                    if group is not None:
                        groups.append(group)
                    elif args.replicas > 1:
                        raise SystemExit(f"cannot confine replica {index} to {args.cpu_m}m: {group_note}")
                profiled = index == 0  # the profilers watch the first replica
                replicas.append(procs.service("oms", log_name=f"oms-{index}" if args.replicas > 1 else None, env={
                    **common("oms"), "OMS_REDIS_URL": redis.url.rsplit("/", 1)[0] + "/2",
                    "OMS_SIMULATION_DATABASE_URL": pg.dsn("oms"), "OMS_KAFKA_BOOTSTRAP": kafka.bootstrap,
                    "OMS_NATS_URL": nats.url, "OMS_VENUE_URL": venue_url, "KRAKEN_CREDENTIALS_DIR": str(creds),
                    **upstream_env}, preexec=group.join if group is not None else None,
                    argv=[sys.executable, "-c", PROFILED, args.profile] if args.profile and profiled else
                    [sys.executable, "-c", CPU_SAMPLED, args.cpu_sample] if args.cpu_sample and profiled else None))
            oms_url, oms = replicas[0]
            pids = [proc.pid for _, proc in replicas]

            async def run() -> None:
                client = Client([url for url, _ in replicas], admin, size=max(64, args.max_concurrency))
                await client.open()
                for _ in range(50):  # warm-up: caches, connections, JIT-free but lazy imports
                    await client.post()
                # Past the replicas' grace for other replicas' events (3 s): the warm-up's are settled before the
                # measured phase starts.
                await asyncio.sleep(1.0 if args.replicas == 1 else 4.0)
                spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record", "-p", str(oms.pid), "-r",
                                        "100", "--gil", "-f", "raw", "-o", args.pyspy], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL) if args.pyspy else None
                perf = start_perf(oms.pid, root) if args.perf else None
                tracer = subprocess.Popen(["strace", "-c", "-f", "-o", str(root / "strace.txt"), "-p", str(oms.pid)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) if args.strace else None
                if args.cpu_sample:
                    Path(args.cpu_sample + ".gc.json").unlink(missing_ok=True)
                    os.kill(oms.pid, signal.SIGUSR2)  # start sampling
                results["open"] = await open_loop(client, args.rate, args.seconds, pids, groups,
                                                  settle_s=0.0 if args.replicas == 1 else 4.0)
                if args.cpu_sample:
                    os.kill(oms.pid, signal.SIGUSR1)  # stop and write the stacks
                    gc_file = Path(args.cpu_sample + ".gc.json")
                    for _ in range(50):
                        if gc_file.exists():
                            results["gc"] = json.loads(gc_file.read_text())
                            break
                        await asyncio.sleep(0.1)
                if perf is not None:
                    results["perf"] = stop_perf(perf, root)
                if tracer is not None:
                    os.kill(tracer.pid, signal.SIGINT)
                    tracer.wait(10)
                    results["strace"] = (root / "strace.txt").read_text()
                await asyncio.sleep(2.0)
                if args.max_concurrency:
                    results["closed"] = await closed_loop(client, args.max_concurrency, args.seconds, pids)
                if spy is not None:
                    os.kill(spy.pid, signal.SIGINT)
                    spy.wait(30)
                results["floor"] = await closed_loop(client, 8, min(3.0, args.seconds), [oms.pid],
                                                     get="/v1/status")
                results["rss_mib"] = [rss_mib(pid) for pid in pids]
                await client.close()

            try:
                asyncio.run(run())
                time.sleep(2.0 if args.replicas == 1 else 4.0)  # let fills and events settle before reading the OMS's own view
                results["feed"] = [httpx.get(f"{url}/v1/status", headers={"Authorization": f"Bearer {admin}"}).json()[
                    "executions_feed"] for url, _ in replicas]
                rejected = httpx.get(f"{oms_url}/v1/orders", params={"state": "rejected", "limit": 500},
                                     headers={"Authorization": f"Bearer {admin}"}).json()["items"]
                reasons: dict[str, int] = {}
                for order in rejected:
                    for r in order["reasons"]:
                        key = f"{r['code']}: {r['message'][:80]}"
                        reasons[key] = reasons.get(key, 0) + 1
                results["rejections"] = reasons
                results["events"] = []
                for index, (url, _) in enumerate(replicas):
                    metrics = httpx.get(f"{url}/metrics").text.splitlines()
                    results["events"] += [
                        (f"replica {index}: " if args.replicas > 1 else "") + m for m in metrics if m.startswith((
                            "oms_execution_events_total{", "oms_orders_total{", "oms_rejections_total{"))]
            finally:
                procs.stop_all()  # the services before the servers they use
    finally:
        procs.stop_all()
        for group in groups:
            for path in {group.cpu_dir, group.cpuacct_dir, group.memory_dir}:
                for directory in (path, path.parent):  # the group, then aether-bench/ when it is empty
                    try:
                        directory.rmdir()
                    except OSError:
                        pass
        if args.keep_logs:
            print(f"logs kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)

    replicas_note = "one replica" if args.replicas == 1 else f"{args.replicas} replicas, orders sent round-robin"
    print(f"\noms-service, {replicas_note} ({group_note} each); checks: {', '.join(sorted(checks)) or 'none'}; "
          f"{os.cpu_count()} CPUs, load average before {load_before}")
    print("every order: claim id, checks, AddOrder, ack, fill (executions feed), Kafka events")
    print(f"{'phase':<22} {'orders':>7} {'orders/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
          f"{'OMS CPU us/order':>17} {'orders/s @200m':>15}")
    if args.replicas > 1:
        print("(CPU per order: all replicas' CPU over all orders; orders/s @200m: with 200m for each replica)")
    for name, label in (("open", f"open loop {args.rate:g}/s"), ("closed", f"closed loop x{args.max_concurrency}"),
                        ("floor", "GET /v1/status")):
        r = results.get(name)
        if not r:
            continue
        scale = args.replicas if name != "floor" else 1
        at_200m = scale * 0.2 / (r["cpu_us_per_order"] / 1e6) if r["cpu_us_per_order"] else float("nan")
        print(f"{label:<22} {r['orders']:>7} {r['rate']:>9.1f} {r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} "
              f"{r['max_ms']:>8.1f} {r['cpu_us_per_order']:>17.0f} {at_200m:>15.0f}")
        print(f"{'':<22} statuses {r['statuses']} states {r['states']}" + (
            f" transport errors {r['errors']}" if r.get("errors") else ""))
        if r.get("threads") and r["orders"]:
            by_thread = sorted(r["threads"].items(), key=lambda kv: -kv[1])
            print(f"{'':<22} CPU us/order by OMS thread: " + ", ".join(
                f"{name} {cpu / r['orders'] * 1e6:.0f}" for name, cpu in by_thread) + (
                f"; kernel share {r['system_share']:.0%}" if "system_share" in r else ""))
    opened = results.get("open") or {}
    if args.replicas > 1 and opened.get("replica_cpu_m"):
        print("open loop: CPU of each replica (millicores): " + ", ".join(f"{m:.0f}" for m in opened["replica_cpu_m"]))
    if "throttled_periods" in opened or opened.get("slow_by_second"):
        print(f"open loop: CFS periods throttled {opened.get('throttled_periods', 'n/a')} (of about "
              f"{args.seconds * 10:.0f}); orders over 100 ms by second of the run: {opened.get('slow_by_second') or 'none'}")
    perf = results.get("perf")
    if perf and results.get("open"):
        n = max(results["open"]["orders"], 1)
        print("perf stat, open loop, per order: " + ", ".join(
            f"{name} {value / n:,.0f}" for name, value in perf.items()))
    if results.get("strace"):
        print(results["strace"])
    if results.get("gc"):
        print("OMS garbage collections in the open loop (generation: count, CPU ms): " + ", ".join(
            f"{g}: {v['count']}, {v['cpu_ms']:.1f}" for g, v in results["gc"].items()))
    for index, feed in enumerate(results.get("feed") or []):
        print(f"replica {index}: executions feed {feed}")
    print("OMS resident memory after the load: " + ", ".join(f"{m:.0f}" for m in results.get("rss_mib") or []) + " MiB")
    for line in results.get("events", []):
        print(f"  {line}")
    if results.get("rejections"):
        print(f"rejection reasons: {results['rejections']}")


if __name__ == "__main__":
    main()
