"""Schemathesis over universe-service's live /openapi.json with an admin token: no input yields a 5xx.

The venue runs in-process (uvicorn in a thread serving ``create_public_app``)
so the service has instruments to look up, approve and exclude while fuzzed.
Bounded: 30 examples per operation, a 5 s deadline per example.
"""

from __future__ import annotations


import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from sandbox.infra.ports import free_port
from sandbox.infra.wait import wait_until
from sandbox.venue.public_rest import create_public_app

pytestmark = pytest.mark.integration

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"


@pytest.fixture
def venue_url() -> Iterator[str]:
    """The venue's public REST API on a loopback port, in a thread of the test process."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_public_app(FIXTURE), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, name="venue", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="in-thread venue")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def test_no_input_makes_universe_answer_5xx(api_server_errors: Callable[[str], list[str]],
    start_service: Any, postgres: Any, venue_url: str, admin_token: str, fuzz_openapi: Any
) -> None:
    dbname = f"universe_fuzz_{uuid.uuid4().hex[:8]}"
    postgres.create_database(dbname)
    svc = start_service("universe", {"UNIVERSE_DATABASE_URL": postgres.dsn(dbname), "UNIVERSE_VENUE_URL": venue_url})
    listing = httpx.get(f"{svc.url}/v1/instruments", headers={"Authorization": f"Bearer {admin_token}"})
    assert listing.json()["total"] == 6  # something to look up, approve and exclude
    fuzz_openapi(svc.url, admin_token, max_examples=30)
    metrics = httpx.get(f"{svc.url}/metrics").text
    served = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
        if line.startswith("http_requests_total{") and 'route="/v1/' in line
    )
    assert served >= 100  # the fuzzer really exercised the API
    assert api_server_errors(metrics) == []
    errors = [line for line in svc.log_path.read_text().splitlines() if '"level": "error"' in line]
    assert errors == []
