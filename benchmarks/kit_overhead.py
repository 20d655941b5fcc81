"""Throughput of kit endpoints vs a bare FastAPI endpoint, in one run, on loopback.

Run: ``.venv/bin/python benchmarks/kit_overhead.py [--seconds 5] [--concurrency 16]``

Starts an embedded PostgreSQL and Redis, auth-service, and three tiny apps, each
its own uvicorn process with the same settings (one worker, uvloop, httptools,
no access log):

* ``bare``        – plain FastAPI, ``GET /ping`` returning a small JSON object;
* ``kit-open``    – the same endpoint in a kit app (request id, metrics, body limit, error handlers);
* ``kit-auth``    – the same endpoint behind ``CurrentPrincipal`` (JWT via JWKS, verified-token
  cache, the session check: a local cache Redis invalidates, else one ``PTTL auth:session:{sid}``);
* ``kit-hot``     – ``kit-auth`` with the endpoint also declared a hot route (``sandbox.services.kit.hot``:
  answered from the kit middleware, FastAPI's routing and dependency tree skipped);
* ``introspect``  – auth-service's ``POST /v1/introspect`` (service token as caller);
* ``kit-open-traced``, ``kit-auth-traced`` – the two kit apps with OpenTelemetry tracing on
  (``OTEL_EXPORTER_OTLP_ENDPOINT`` set): a SERVER span per request, batched and exported over
  OTLP/HTTP to a receiver in this process (:class:`sandbox.observability.otlp_sink.OtlpSink`),
  so the export's CPU is counted too. ``--sample-ratio 0.1`` samples 10% of the traces instead of all
  (``OTEL_TRACES_SAMPLER=parentbased_traceidratio``).

Load: a minimal keep-alive HTTP/1.1 client on asyncio streams (httpx would be the
bottleneck), ``--concurrency`` connections for ``--seconds`` each, after a short
warm-up. Reports requests/s, latency percentiles, and the server process's CPU
time per request (from /proc; robust to other load on the machine, and what a
100m CPU quota divides: "req/s @100m" = 0.1 s / CPU per request). Everything binds
127.0.0.1 and is stopped (by PID) before exit. No figures are asserted anywhere.
``KIT_BENCH_PROFILE=/tmp/prof`` writes a cProfile of each kit app at shutdown.
"""



import argparse
import asyncio
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

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# ---- the apps under test (run with --serve NAME) -----------------------------------------------


def serve(name: str) -> None:
    """Serve one of the benchmark apps on AETHER_HOST/AETHER_PORT."""
    from fastapi import APIRouter, FastAPI

    if name == "bare":
        import uvicorn

        app = FastAPI()

        @app.get("/ping")
        async def ping() -> dict:
            return {"ok": True}

        @app.get("/healthz")
        async def healthz() -> dict:
            return {"status": "ok"}

        uvicorn.run(app, host="127.0.0.1", port=int(os.environ["AETHER_PORT"]), loop="uvloop", http="httptools",
                    access_log=False, log_level="warning")
        return

    from sandbox.services.kit import CurrentPrincipal, KitSettings, create_service_app
    from sandbox.services.kit.run import run

    router = APIRouter()
    name = name.removesuffix("-traced")  # tracing is switched on by the environment alone
    if name == "kit-open":
        @router.get("/ping")
        async def ping_open() -> dict:
            return {"ok": True}
    else:
        @router.get("/ping")
        async def ping_auth(p: CurrentPrincipal) -> dict:
            return {"ok": True}

    hot = []
    if name == "kit-hot":
        from sandbox.services.kit.hot import HotCall, HotRoute

        async def ping_hot(call: HotCall) -> bytes:
            return b'{"ok":true}'

        hot.append(HotRoute("GET", "/ping", ping_hot))
    hooks = []
    if os.environ.get("KIT_BENCH_PROFILE"):  # developer aid: cProfile of a kit app, written at shutdown
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

        async def dump(_app: object) -> None:
            profiler.disable()
            profiler.dump_stats(f"{os.environ['KIT_BENCH_PROFILE']}.{name}")

        hooks.append(dump)
    run(lambda: create_service_app(kit=KitSettings(log_level="warning"), title=name, routers=[router], on_shutdown=hooks,
                                   hot_routes=hot))


# ---- load --------------------------------------------------------------------------------------


async def _worker(host: str, port: int, request: bytes, stop_at: float, latencies: list[float], errors: list[int]) -> None:
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
            if status != 200:
                errors.append(status)
    finally:
        writer.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(
    url: str, *, method: str = "GET", body: bytes = b"", token: str | None, seconds: float, concurrency: int, pid: int
) -> dict:
    """Requests/s, latency percentiles and server CPU per request, for ``concurrency`` keep-alive connections."""
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, port = hostport.rsplit(":", 1)
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    headers = [f"{method} {path} HTTP/1.1", f"Host: {hostport}", "Connection: keep-alive"]
    if token:
        headers.append(f"Authorization: Bearer {token}")
    if body:
        headers += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    for phase, duration in (("warm-up", min(1.0, seconds / 4)), ("measure", seconds)):
        latencies: list[float] = []
        errors: list[int] = []
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        stop_at = started + duration
        await asyncio.gather(*(_worker(host, int(port), request, stop_at, latencies, errors) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"rps": len(latencies) / elapsed, "p50_ms": pct(0.50), "p99_ms": pct(0.99), "requests": len(latencies),
            "cpu_us_per_req": cpu / max(len(latencies), 1) * 1e6, "errors": len(errors), "error_statuses": sorted(set(errors)), "mean_ms": statistics.fmean(latencies) * 1000}


# ---- orchestration ------------------------------------------------------------------------------


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        return subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def main() -> None:
    """Start everything, measure each target in turn, print a table, stop everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--sample-ratio", type=float, default=None, help="trace sampling ratio (default: every request)")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
        return

    from sandbox.infra.ports import free_port
    from sandbox.infra.postgres import EmbeddedPostgres
    from sandbox.infra.redis import EmbeddedRedis
    from sandbox.observability.otlp_sink import OtlpSink

    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    root = Path(tempfile.mkdtemp(prefix="aether-bench-"))
    root.chmod(0o711)
    procs: list[subprocess.Popen[bytes]] = []
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "AUTH_", "OTEL_"))}
    sink = OtlpSink().start()
    try:
        with EmbeddedPostgres(root / "pg", free_port()) as pg, EmbeddedRedis(root / "redis", free_port()) as redis:
            pg.create_database("auth")
            accounts = {"bench": secrets.token_urlsafe(24)}
            admin_pw = secrets.token_urlsafe(18)
            auth_port = free_port()
            auth_url = f"http://127.0.0.1:{auth_port}"
            auth_env = {**base_env, "AETHER_SERVICE_NAME": "auth-service", "AETHER_PORT": str(auth_port),
                        "AETHER_LOG_LEVEL": "warning",
                        "AUTH_DATABASE_URL": pg.dsn("auth"), "AUTH_REDIS_URL": redis.url,
                        "AETHER_SESSION_REDIS_URL": redis.url, "AUTH_BOOTSTRAP_ADMIN_PASSWORD": admin_pw,
                        "AUTH_SERVICE_ACCOUNTS": json.dumps(accounts)}
            auth = _spawn([sys.executable, "-m", "sandbox.services.auth"], auth_env, root / "auth.log")
            procs.append(auth)
            _wait_ready(auth_url, auth, root / "auth.log")
            targets: dict[str, tuple[str, int]] = {}
            for name in ("bare", "kit-open", "kit-auth", "kit-hot", "kit-open-traced", "kit-auth-traced"):
                port = free_port()
                env = {**base_env, "AETHER_SERVICE_NAME": name, "AETHER_PORT": str(port), "AETHER_AUTH_URL": auth_url,
                       "AETHER_SESSION_REDIS_URL": redis.url}
                if name.endswith("-traced"):
                    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
                    if args.sample_ratio is not None:
                        env["OTEL_TRACES_SAMPLER"] = "parentbased_traceidratio"
                        env["OTEL_TRACES_SAMPLER_ARG"] = str(args.sample_ratio)
                proc = _spawn([sys.executable, __file__, "--serve", name], env, root / f"{name}.log")
                procs.append(proc)
                _wait_ready(f"http://127.0.0.1:{port}", proc, root / f"{name}.log")
                targets[name] = (f"http://127.0.0.1:{port}/ping", proc.pid)

            user = httpx.post(f"{auth_url}/v1/login", json={"username": "admin", "password": admin_pw}).json()["access_token"]
            svc = httpx.post(f"{auth_url}/v1/service-tokens",
                             json={"client_id": "bench", "client_secret": accounts["bench"]}).json()["access_token"]
            results = {}
            for name, (url, pid) in targets.items():
                results[name] = asyncio.run(load(url, token=user if name.startswith(("kit-auth", "kit-hot")) else None,
                                                 seconds=args.seconds, concurrency=args.concurrency, pid=pid))
            results["introspect"] = asyncio.run(load(
                f"{auth_url}/v1/introspect", method="POST", body=json.dumps({"token": user}).encode(), token=svc,
                seconds=args.seconds, concurrency=args.concurrency, pid=auth.pid))
    finally:
        for proc in reversed(procs):
            _stop(proc)
        sink.stop()
        shutil.rmtree(root, ignore_errors=True)

    bare = results["bare"]["rps"]
    print(f"\nloopback, {args.concurrency} keep-alive connections, {args.seconds:g} s per target, {os.cpu_count()} CPUs")
    print(f"load average before: {load_before}")
    print(f"{'target':<12} {'req/s':>9} {'vs bare':>8} {'p50 ms':>8} {'p99 ms':>8} {'CPU us/req':>11} {'req/s @100m':>12} {'errors':>7}")
    for name, r in results.items():
        note = f"  statuses {r['error_statuses']}" if r["errors"] else ""
        at_100m = 0.1 / (r["cpu_us_per_req"] / 1e6) if r["cpu_us_per_req"] else float("nan")
        print(f"{name:<12} {r['rps']:>9.0f} {r['rps'] / bare:>7.0%} {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
              f" {r['cpu_us_per_req']:>11.0f} {at_100m:>12.0f} {r['errors']:>7}{note}")
    for name in ("kit-open", "kit-auth"):
        off, on = results[name]["cpu_us_per_req"], results[f"{name}-traced"]["cpu_us_per_req"]
        if off and on:
            print(f"tracing on, {name}: {on - off:+.0f} us CPU per request ({on / off - 1:+.0%}), "
                  f"req/s {results[f'{name}-traced']['rps'] / results[name]['rps'] - 1:+.0%}")
    print(f"spans received by the OTLP receiver: {len(sink.spans)} in {sink.requests} exports")


if __name__ == "__main__":
    main()
