"""Schemathesis over secrets-service's live /openapi.json with an admin token: no input yields a 5xx.

Each operation gets a bounded number of generated cases (``MAX_EXAMPLES`` valid
and as many invalid ones: wrong types, out-of-range values, broken bodies). The
operations are driven from one test with Hypothesis directly rather than
``schemathesis.pytest.from_fixture``, whose lazy parametrisation breaks on
pytest 9.2 (``'Function' object has no attribute '_nodeid'``).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 30


def test_no_input_makes_secrets_fail(start_service: Any, postgres: Any, tmp_path: Path, admin_token: str) -> None:
    db = f"secrets_fuzz_{uuid.uuid4().hex[:8]}"
    postgres.create_database(db)
    svc = start_service("secrets", {
        "SECRETS_DATABASE_URL": postgres.dsn(db),
        "SECRETS_ENCRYPTION_KEY": json.dumps({"1": base64.b64encode(os.urandom(32)).decode()}),
        "KRAKEN_CREDENTIALS_DIR": str(tmp_path),
    })
    schema = schemathesis.openapi.from_url(f"{svc.url}/openapi.json")
    headers = {"Authorization": f"Bearer {admin_token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10
    failures: dict[str, str] = {}
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(max_examples=MAX_EXAMPLES, deadline=5000, suppress_health_check=list(HealthCheck),
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
