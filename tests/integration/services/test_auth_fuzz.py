"""Schemathesis over auth-service's live OpenAPI: no input makes it answer 5xx.

Runs against its own auth-service (own database, own Redis db) so fuzzed logins
cannot lock out the session admin, and fuzzed user changes stay contained.
Bounded: 30 examples per operation, a 5 s deadline per example.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def test_no_input_makes_auth_answer_5xx(api_server_errors: Callable[[str], list[str]],
    start_service: Callable[..., Any],
    auth_env_factory: Callable[..., dict[str, str]],
    fuzz_openapi: Callable[..., None],
) -> None:
    env = auth_env_factory("auth_fuzz", redis_db=3, AUTH_LOCKOUT_THRESHOLD="1000")
    svc = start_service("auth", env)
    token = httpx.post(
        f"{svc.url}/v1/login", json={"username": "admin", "password": env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]}, timeout=10
    ).json()["access_token"]
    # logout would revoke the fuzzer's own session (covered in test_auth.py)
    fuzz_openapi(svc.url, token, max_examples=30, skip=("POST /v1/logout",))
    assert httpx.get(f"{svc.url}/healthz").status_code == 200
    metrics = httpx.get(f"{svc.url}/metrics").text
    served = sum(
        float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
        if line.startswith("http_requests_total{") and 'route="/v1/' in line
    )
    assert served >= 100  # the fuzzer really exercised the API
    assert api_server_errors(metrics) == []
    errors = [line for line in svc.log_path.read_text().splitlines() if '"level": "error"' in line]
    assert errors == []
