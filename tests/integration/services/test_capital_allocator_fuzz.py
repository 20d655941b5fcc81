"""Schemathesis over capital-allocator's live /openapi.json with an admin token: no input yields a 5xx.

Each operation gets a bounded number of generated cases (``MAX_EXAMPLES``
valid and as many invalid ones: wrong types, out-of-range values, broken
bodies), against a service seeded with a portfolio, an active strategy and a
reservation so the generated calls reach the domain logic, not only the 404s.
The operations are driven from one test with Hypothesis directly rather than
``schemathesis.pytest.from_fixture``, whose lazy parametrisation breaks on
pytest 9.2 (``'Function' object has no attribute '_nodeid'``).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 30


def test_no_input_makes_capital_allocator_fail(start_service: Any, postgres: Any, admin_token: str) -> None:
    db = f"capital_fuzz_{uuid.uuid4().hex[:8]}"
    postgres.create_database(db)
    svc = start_service("capital_allocator", {
        "AETHER_SERVICE_NAME": "capital-allocator", "CAPITAL_ALLOCATOR_DB_URL": postgres.dsn(db),
    })
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=svc.url, headers=headers, timeout=10) as http:
        assert http.put("/v1/portfolio", json={"nav": "1000000", "cash_buffer_pct": "5"}).status_code == 200
        for name in ("0", "a", "s1"):
            assert http.put(f"/v1/strategies/{name}/target", json={"weight": "1"}).status_code == 201
        assert http.post("/v1/strategies/0/allocate").status_code == 200
        assert http.post("/v1/strategies/0/reservations", json={"order_id": "0", "amount": "1"}).status_code == 201

    schema = schemathesis.openapi.from_url(f"{svc.url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18
    failures: dict[str, str] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=MAX_EXAMPLES, deadline=10_000, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                case.call_and_validate(base_url=svc.url, headers=headers, checks=[not_a_server_error], timeout=10)

            try:
                run()
            except Exception as exc:  # collect every operation's failure, report them together
                failures[f"{operation.method.upper()} {operation.path} ({mode.value})"] = str(exc)[:2000]
    assert not failures, "\n\n".join(f"{op}:\n{err}" for op, err in failures.items())
    assert svc.is_running()
    log = svc.log_path.read_text()
    assert '"level": "error"' not in log and "Traceback" not in log
