"""Schemathesis over fees-service's live /openapi.json with an admin token: no input yields a 5xx.

Bounded: 30 examples per operation, a 5 s deadline per example. A schedule and
a fill exist beforehand so estimates and volumes run their full paths. Then 60
generated valid orders check the fee rule end to end.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.integration


def test_no_input_makes_fees_answer_5xx(api_server_errors: Callable[[str], list[str]],
    start_service: Any, postgres: Any, kafka_broker: Any, admin_token: str, fuzz_openapi: Callable[..., None]
) -> None:
    dbname = f"fees_fuzz_{secrets.token_hex(4)}"
    postgres.create_database(dbname)
    topic = f"oms.fills.fuzz{secrets.token_hex(4)}"
    kafka_broker.create_topics([topic], partitions=1)
    svc = start_service("fees", {
        "FEES_DATABASE_URL": postgres.dsn(dbname),
        "FEES_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "FEES_FILLS_TOPIC": topic,
        "FEES_CONSUMER_GROUP": f"fees-fuzz-{secrets.token_hex(4)}",
    })
    auth = {"Authorization": f"Bearer {admin_token}"}
    seeded = httpx.put(f"{svc.url}/v1/schedules/XBT/USD", headers=auth, timeout=10,
                       json={"quote": "USD", "quote_decimals": 5, "fees": [[0, "0.4"], [10000, "0.35"]]})
    assert seeded.status_code == 201, seeded.text
    fill = {"fill_id": "seed-1", "account": "a", "symbol": "XBT/USD", "side": "buy", "qty": "1", "price": "100",
            "liquidity": "taker", "ts": datetime.now(timezone.utc).isoformat()}
    assert httpx.post(f"{svc.url}/v1/fills", json=fill, headers=auth, timeout=10).status_code == 201

    fuzz_openapi(svc.url, admin_token, max_examples=30)

    metrics = httpx.get(f"{svc.url}/metrics", timeout=5).text
    served = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
        if line.startswith("http_requests_total{") and 'route="/v1/' in line
    )
    assert served >= 100  # the fuzzer really exercised the API
    assert api_server_errors(metrics) == []
    errors = [line for line in svc.log_path.read_text().splitlines() if '"level": "error"' in line]
    assert errors == []

    # Valid orders, generated: every answer is 200 and obeys the documented rule (cost rounded
    # half-up to 5 dp; fee = cost * rate / 100 rounded half-up, at least one unit when the rate > 0).
    decimals = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("100000"), places=8)

    @given(qty=decimals, price=decimals, liquidity=st.sampled_from(["maker", "taker"]))
    @settings(max_examples=60, deadline=5000, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def priced(qty: Decimal, price: Decimal, liquidity: str) -> None:
        body = {"account": "a", "symbol": "XBT/USD", "side": "buy", "qty": str(qty), "price": str(price),
                "liquidity": liquidity}
        resp = httpx.post(f"{svc.url}/v1/estimate", json=body, headers=auth, timeout=10)
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        cost = (qty * price).quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)
        fee = (cost * Decimal(doc["rate"]) / 100).quantize(Decimal("0.00001"), rounding=ROUND_HALF_UP)
        if fee == 0 and cost > 0 and Decimal(doc["rate"]) > 0:
            fee = Decimal("0.00001")
        assert (Decimal(doc["cost"]), Decimal(doc["fee"])) == (cost, fee)
        assert doc["rate"] == "0.4"  # the seeded schedule has no maker tiers: maker = taker; volume 100 USD

    priced()
