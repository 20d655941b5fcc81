"""Schemathesis over policy-service's live /openapi.json with an admin token: no input yields a 5xx.

policy-service runs against the real universe-service (synced from the venue
simulator's fixture) and secrets-service. Every operation gets a bounded number
of generated cases in both modes (valid-by-schema and invalid), driven with
Hypothesis directly rather than ``schemathesis.pytest.from_fixture``, whose lazy
parametrisation breaks on pytest 9.2 (``'Function' object has no attribute
'_nodeid'``). Then generated valid orders are checked against an independent
oracle of the size rules.
"""

from __future__ import annotations

from collections.abc import Callable

import base64
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from sandbox.infra.ports import free_port
from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[3]
FIXTURE = REPO / "fixtures" / "kraken" / "assetpairs.json"
MAX_EXAMPLES = 30


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def common_env(auth: Any, client_id: str) -> dict[str, str]:
    return {"AETHER_AUTH_URL": auth.url, "AETHER_SERVICE_CLIENT_ID": client_id,
            "AETHER_SERVICE_CLIENT_SECRET": auth.service_accounts[client_id]}


def start_venue(port: int, log_dir: Path) -> subprocess.Popen[bytes]:
    fd, name = tempfile.mkstemp(prefix="venue-", suffix=".log", dir=log_dir)
    os.close(fd)
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    with open(name, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sandbox.venue", "--assetpairs", str(FIXTURE), "--port", str(port), "--session", ""],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )

    def ready() -> bool | str:
        if proc.poll() is not None:
            raise RuntimeError(Path(name).read_text()[-2000:])
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.TransportError as exc:
            return str(exc)

    try:
        wait_until(ready, timeout=60, interval=0.05, what="venue /healthz")
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)


def expected_codes(qty: Decimal, price: Decimal, max_notional: Decimal) -> list[str]:
    """XBT/USD (ordermin 0.0001, costmin 0.5, tick 0.1, pair_decimals 1, lot_decimals 8), computed independently."""
    out = []
    if qty < Decimal("0.0001"):
        out.append("qty_below_ordermin")
    if qty != qty.quantize(Decimal("1E-8"), rounding="ROUND_DOWN"):
        out.append("qty_too_many_decimals")
    if price != price.quantize(Decimal("0.1"), rounding="ROUND_DOWN"):
        out += ["price_too_many_decimals", "price_off_tick"]  # the tick is 10^-pair_decimals here
    cost = qty * price
    if cost < Decimal("0.5"):
        out.append("cost_below_costmin")
    if cost > max_notional:
        out.append("notional_above_max")
    return out


def test_no_input_makes_policy_fail(api_server_errors: Callable[[str], list[str]],
    start_service: Any, auth_service: Any, postgres: Any, admin_token: str, service_log_dir: Path
) -> None:
    venue_port = free_port()
    venue = start_venue(venue_port, service_log_dir)
    try:
        tag = secrets.token_hex(4)
        for db in (f"universe_f{tag}", f"secrets_f{tag}", f"policy_f{tag}"):
            postgres.create_database(db)
        universe = start_service("universe", {
            "UNIVERSE_DATABASE_URL": postgres.dsn(f"universe_f{tag}"), "UNIVERSE_VENUE_URL": f"http://127.0.0.1:{venue_port}",
            **common_env(auth_service, "universe-service"),
        })
        assert httpx.post(f"{universe.url}/v1/instruments/XBT%2FUSD/approve", json={"reason": "fuzz"},
                          headers=bearer(admin_token), timeout=10).status_code == 200
        secrets_svc = start_service("secrets", {
            "SECRETS_DATABASE_URL": postgres.dsn(f"secrets_f{tag}"),
            "SECRETS_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            **common_env(auth_service, "secrets-service"),
        })
        key = {"label": "main", "api_key": base64.b64encode(os.urandom(42)).decode(),
               "private_key": base64.b64encode(os.urandom(64)).decode(), "permissions": ["trade"]}
        assert httpx.post(f"{secrets_svc.url}/v1/accounts/acct-1/kraken-keys", json=key,
                          headers=bearer(admin_token), timeout=10).status_code == 201
        svc = start_service("policy", {
            "POLICY_DATABASE_URL": postgres.dsn(f"policy_f{tag}"), "POLICY_UNIVERSE_URL": universe.url,
            "POLICY_SECRETS_URL": secrets_svc.url, "POLICY_VENUE_URL": f"http://127.0.0.1:{venue_port}",
            **common_env(auth_service, "test-client"),
        })
        auth = bearer(admin_token)
        seeded = httpx.put(f"{svc.url}/v1/accounts/acct-1/rules", headers=auth, timeout=10,
                           json={"allowed_symbols": ["XBT/USD"], "max_order_notional": {"USD": "100000"}})
        assert seeded.status_code == 201, seeded.text

        schema = schemathesis.openapi.from_url(f"{svc.url}/openapi.json")
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 7
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

        metrics = httpx.get(f"{svc.url}/metrics", timeout=5).text
        served = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith("http_requests_total{") and 'route="/v1/' in line)
        assert served >= 200  # the fuzzer really exercised the API
        assert api_server_errors(metrics) == []
        errors = [line for line in svc.log_path.read_text().splitlines() if '"level": "error"' in line]
        assert errors == []

        # generated valid orders: each decision matches an independent computation of the size rules
        assert httpx.put(f"{svc.url}/v1/accounts/acct-1/rules", headers=auth, timeout=10,
                         json={"max_order_notional": {"USD": "100000"}}).status_code in (200, 201)
        qty = st.decimals(min_value=Decimal("0.00000001"), max_value=Decimal("1000"), places=10)
        price = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("200000"), places=3)

        @given(qty=qty, price=price)
        @settings(max_examples=80, deadline=5000, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def decided(qty: Decimal, price: Decimal) -> None:
            body = {"account": "acct-1", "symbol": "XBT/USD", "side": "buy", "type": "limit",
                    "qty": str(qty), "price": str(price)}
            resp = httpx.post(f"{svc.url}/v1/check-order", json=body, headers=auth, timeout=10)
            assert resp.status_code == 200, resp.text
            doc = resp.json()
            assert [v["code"] for v in doc["violations"]] == expected_codes(qty, price, Decimal("100000"))
            assert doc["allowed"] is (doc["violations"] == [])
            assert Decimal(doc["notional"]) == qty * price

        decided()
    finally:
        stop(venue)
