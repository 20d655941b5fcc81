"""Fuzz oms-service's live OpenAPI schema (schemathesis, bounded) with an admin token: no 5xx, ever.

The OMS trades on the real venue (rate limits off so the fuzzer's volume is not throttled); generated orders go
all the way to it, so rejections by the venue are exercised too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_oms_support import VenueProcess, bearer, oms_env

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def oms(
    start_service_shared: Callable[[str, dict[str, str]], Any], auth_service: Any, postgres: Any, redis_server: Any,
    nats_server: Any, kafka_broker: Any, service_log_dir: Path, tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    tag = secrets.token_hex(4)
    topics = (f"oms.orders.fz{tag}", f"oms.fills.fz{tag}")
    kafka_broker.create_topics(list(topics), partitions=1)
    venue = VenueProcess(service_log_dir, rate_limits=False).start()
    try:
        creds = tmp_path_factory.mktemp("oms-fuzz-kraken")
        venue.create_account(creds)
        venue.set_book("XBTUSD", bids=[["29990.0", "50"]], asks=[["30010.0", "50"]])
        env = oms_env(postgres=postgres, redis_server=redis_server, kafka_broker=kafka_broker, nats_server=nats_server,
                      venue=venue, credentials_dir=creds, database=f"oms_fz_{tag}", topics=topics, auth=auth_service)
        yield start_service_shared("oms", env)
    finally:
        venue.stop()


def test_no_operation_answers_5xx(oms: Any, admin_token: str, fuzz_openapi: Callable[..., None]) -> None:
    fuzz_openapi(oms.url, admin_token, max_examples=25)
    # still healthy, and it really traded: the fuzzer's orders reached the venue
    assert httpx.get(f"{oms.url}/healthz", timeout=5).status_code == 200
    orders = httpx.get(f"{oms.url}/v1/orders", params={"limit": 500}, headers=bearer(admin_token), timeout=10).json()
    assert orders["count"] > 0
