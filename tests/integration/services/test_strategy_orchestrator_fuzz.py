"""Schemathesis over strategy-orchestrator's live /openapi.json with an admin token: no input yields a 5xx.

Seeded with strategies whose ids the generator likes (``0``, ``a``) so generated
calls reach the state machine and the database, not only the 404s. Peers point
at a closed loopback port, so starts and stops fail fast (one attempt) in the
background while the fuzzer keeps going.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from sandbox.infra.ports import free_port

pytestmark = pytest.mark.integration


def negative_pass(base_url: str, headers: dict[str, str], max_examples: int = 30) -> None:
    """Every operation with schema-violating inputs (``fuzz_openapi`` generates valid ones only): no 5xx."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=max_examples, deadline=10_000, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        @given(case=operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))
        def run(case: Any) -> None:
            case.call_and_validate(base_url=base_url, headers=headers, checks=[not_a_server_error], timeout=10)

        try:
            run()
        except Exception as exc:  # collect every operation's failure, report them together
            failures.append(f"{operation.method.upper()} {operation.path}: {str(exc)[:2000]}")
    assert not failures, "server errors found:\n\n" + "\n\n".join(failures)


def test_no_input_makes_strategy_orchestrator_fail(
    start_service: Any, postgres: Any, auth_service: Any, admin_token: str, fuzz_openapi: Callable[..., None]
) -> None:
    db = f"strategy_fuzz_{uuid.uuid4().hex[:8]}"
    postgres.create_database(db)
    closed = f"http://127.0.0.1:{free_port()}"
    svc = start_service("strategy_orchestrator", {
        "AETHER_SERVICE_NAME": "strategy-orchestrator", "STRATEGY_DATABASE_URL": postgres.dsn(db),
        "AETHER_SERVICE_CLIENT_ID": "test-client",
        "AETHER_SERVICE_CLIENT_SECRET": auth_service.service_accounts["test-client"],
        "STRATEGY_CAPITAL_ALLOCATOR_URL": closed, "STRATEGY_OMS_URL": closed,
        "STRATEGY_CALL_ATTEMPTS": "1", "STRATEGY_CALL_TIMEOUT_S": "1",
    })
    headers = {"Authorization": f"Bearer {admin_token}"}
    with httpx.Client(base_url=svc.url, headers=headers, timeout=10) as http:
        for sid in ("0", "a", "s1"):
            resp = http.post("/v1/strategies", json={
                "id": sid, "name": sid, "kind": "mm", "accounts": ["0"], "symbols": ["0/0"],
                "capital": {"weight": "1"}, "params": {"x": 1},
            })
            assert resp.status_code == 201, resp.text
    fuzz_openapi(svc.url, admin_token, max_examples=30)  # schema-valid inputs
    negative_pass(svc.url, headers)  # schema-violating inputs: wrong types, out of range, broken bodies
    assert svc.is_running()
    log = svc.log_path.read_text()
    assert '"level": "error"' not in log and "Traceback" not in log
