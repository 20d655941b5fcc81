"""``aether-sandbox metrics`` without Prometheus: figures from two direct scrapes of a live kit service's /metrics.

(With Prometheus, the same view is checked in tests/e2e/test_observability.py.)
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from fastapi import APIRouter

from sandbox.infra.ports import free_port
from sandbox.observability.view import collect
from sandbox.runtimes.base import ComponentStatus, SandboxStatus, Usage
from sandbox.services.kit import KitSettings, ServiceError, create_service_app

pytestmark = pytest.mark.integration


@pytest.fixture
def service():
    router = APIRouter()

    @router.get("/v1/ok")
    async def ok() -> dict:
        return {"ok": True}

    @router.get("/v1/fail")
    async def fail() -> dict:
        raise ServiceError(503, "unavailable", "deliberately failing")

    kit = KitSettings(service_name="view-service", session_redis_url="redis://127.0.0.1:1/0")
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_service_app(kit=kit, title="view", routers=[router]),
                                          host="127.0.0.1", port=port, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started
    yield url
    server.should_exit = True
    thread.join(timeout=10)


def test_direct_scrapes_give_rates_errors_and_p99(service: str) -> None:
    status = SandboxStatus("t", "local", True, [
        ComponentStatus("view-service", "running", "healthy", port=int(service.rsplit(":", 1)[1]), url=service,
                        usage=Usage(cpu_m=12.0, cpu_limit_m=200, memory_mib=60.0, memory_limit_mib=512)),
        ComponentStatus("grafana", "unavailable", detail="no package"),
    ])
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=service, timeout=5) as client:
            while not stop.is_set():
                for _ in range(3):
                    client.get("/v1/ok")
                client.get("/v1/fail")

    worker = threading.Thread(target=load)
    worker.start()
    try:
        time.sleep(0.3)
        view = collect(status, interval=1.5)
    finally:
        stop.set()
        worker.join(timeout=10)
    assert view.source == "direct" and view.prometheus_url is None
    assert any("Prometheus is not running" in n for n in view.notes)
    [figures] = view.components  # the unavailable component is left out
    assert figures.component == "view-service"
    assert figures.requests_per_s and figures.requests_per_s > 1
    assert figures.error_ratio is not None and 0.15 < figures.error_ratio < 0.35  # one request in four fails
    assert figures.p99_s is not None and figures.p99_s <= 10
    assert (figures.cpu_m, figures.cpu_limit_m, figures.memory_limit_mib) == (12.0, 200, 512)
