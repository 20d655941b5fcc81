"""Schemathesis over risk-service's live /openapi.json with an admin token: no input yields a 5xx.

Each operation gets a bounded number of generated cases, valid and invalid
(wrong types, out-of-range values, broken bodies), driven with Hypothesis
directly rather than ``schemathesis.pytest.from_fixture``, whose lazy
parametrisation breaks on pytest 9.2 (``'Function' object has no attribute
'_nodeid'``). Datasets, a position and limits exist beforehand so checks run
their full paths. Then generated valid orders are checked against the rules.
"""

from __future__ import annotations

from collections.abc import Callable

import json
import secrets
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25


def test_no_input_makes_risk_answer_5xx(
    api_server_errors: Callable[[str], list[str]],
    start_service: Any, postgres: Any, kafka_broker: Any, nats_server: Any, admin_token: str
) -> None:
    suffix = secrets.token_hex(4)
    for name in ("compliance", "diversification", "esg"):
        postgres.create_database(f"riskfz_{name}_{suffix}")
    topic = f"oms.fills.riskfuzz{suffix}"
    kafka_broker.create_topics([topic], partitions=1)
    svc = start_service("risk", {
        "RISK_COMPLIANCE_DATABASE_URL": postgres.dsn(f"riskfz_compliance_{suffix}"),
        "RISK_DIVERSIFICATION_DATABASE_URL": postgres.dsn(f"riskfz_diversification_{suffix}"),
        "RISK_ESG_DATABASE_URL": postgres.dsn(f"riskfz_esg_{suffix}"),
        "RISK_KAFKA_BOOTSTRAP": kafka_broker.bootstrap,
        "RISK_NATS_URL": nats_server.url,
        "RISK_FILLS_TOPIC": topic,
        "RISK_CONSUMER_GROUP": f"risk-fuzz-{suffix}",
    })
    auth = {"Authorization": f"Bearer {admin_token}"}

    def call(method: str, path: str, body: Any) -> None:
        resp = httpx.request(method, f"{svc.url}{path}", json=body, headers=auth, timeout=10)
        assert resp.status_code in (200, 201), resp.text

    from confluent_kafka import Producer

    producer = Producer(kafka_broker.producer_config())
    doc = {"fill_id": "seed-1", "account": "a", "symbol": "XBT/USD", "side": "buy", "qty": "2", "price": "100",
           "ts": datetime.now(timezone.utc).isoformat()}
    producer.produce(topic, json.dumps(doc).encode())
    assert producer.flush(10) == 0
    del producer
    call("PUT", "/v1/limits/accounts/a", {"gross_exposure": "100000", "daily_loss": "1000", "concentration_pct": "90",
                                           "concentration_floor": "500"})
    call("PUT", "/v1/limits/positions/a/XBT/USD", {"max_position": "5"})
    call("POST", "/v1/compliance/restricted", {"kind": "asset", "value": "DOGE", "reason": "seed"})
    call("PUT", "/v1/esg/exclusions/XMR", {"reason": "privacy coin", "score": "3"})

    def seeded() -> bool | str:
        resp = httpx.get(f"{svc.url}/v1/accounts/a/positions", headers=auth, timeout=5)
        return bool(resp.json()["positions"]) or "no position yet"

    wait_until(seeded, timeout=30, interval=0.2, what="seed fill consumed")

    schema = schemathesis.openapi.from_url(f"{svc.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    failures: dict[str, str] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=MAX_EXAMPLES, deadline=5000, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                case.call_and_validate(base_url=svc.url, headers=auth, checks=[not_a_server_error], timeout=10)

            try:
                run()
            except Exception as exc:  # collect every operation's failure, report them together
                failures[f"{operation.method.upper()} {operation.path} ({mode.value})"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{op}:\n{err}" for op, err in failures.items())
    assert svc.is_running()
    metrics = httpx.get(f"{svc.url}/metrics", timeout=5).text
    assert api_server_errors(metrics) == []
    errors = [line for line in svc.log_path.read_text().splitlines() if '"level": "error"' in line]
    assert errors == []

    # Generated valid orders on a clean account: every answer is 200 and obeys the position and gross rules.
    call("PUT", "/v1/limits/accounts/clean", {"gross_exposure": "1000"})
    call("PUT", "/v1/limits/positions/clean/ETH/USD", {"max_position": "3"})
    call("PUT", "/v1/accounts/clean/kill-switch", {"active": False})
    quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("10"), places=4)
    prices = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("1000"), places=4)

    @given(qty=quantities, price=prices, side=st.sampled_from(["buy", "sell"]))
    @settings(max_examples=60, deadline=5000, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    def checked(qty: Decimal, price: Decimal, side: str) -> None:
        body = {"account": "clean", "symbol": "ETH/USD", "side": side, "qty": str(qty), "price": str(price)}
        resp = httpx.post(f"{svc.url}/v1/check-order", json=body, headers=auth, timeout=10)
        assert resp.status_code == 200, resp.text
        codes = {v["code"] for v in resp.json()["violations"]}
        assert ("position_limit_exceeded" in codes) == (qty > 3)
        assert ("gross_exposure_limit_exceeded" in codes) == (qty * price > 1000)

    checked()
