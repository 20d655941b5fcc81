"""What a load run needs before it starts, made once through the services' own APIs.

Users and their tokens (admin from the sandbox's bootstrap credentials, a
trader and a risk officer created for the run), an approved instrument, a
Kraken key for the load account (so policy grants it trading), the portfolio
NAV and a running strategy with capital (so OMS orders reserve it), a config
key to read, the venue's current prices.  The result is a plain JSON-ready
dictionary the locust process reads (it never imports this package).
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any

from sandbox.errors import EnvironmentProblem

SYMBOL = "XBT/USD"
VENUE_PAIR = "XBTUSD"
ACCOUNT = "load-acct"
STRATEGY = "load-oms"
NAMESPACE = "load"


class SetupFailed(EnvironmentProblem):
    """A service refused what a load run needs before it starts."""


@dataclass(frozen=True)
class Target:
    """The running platform as a load run sees it."""

    urls: dict[str, str]
    """Component -> base URL (loopback)."""
    admin_password: str
    """The bootstrap admin's password, from the sandbox's state directory."""


class _Api:
    """A thin JSON client that turns unexpected answers into :class:`SetupFailed`."""

    def __init__(self, target: Target) -> None:
        import httpx

        self.target = target
        self.http = httpx.Client(timeout=30)

    def call(self, component: str, method: str, path: str, *, token: str | None = None,
             ok: tuple[int, ...] = (200, 201, 202, 204), **kwargs: Any) -> Any:
        url = self.target.urls[component] + path
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.http.request(method, url, headers=headers, **kwargs)
        if response.status_code not in ok:
            raise SetupFailed(
                f"load set-up: {method} {component} {path} answered {response.status_code}: {response.text[:300]}",
                hint=f"see `aether-sandbox logs {component}`",
            )
        return response.json() if response.content and response.headers.get("content-type", "").startswith(
            "application/json") else None

    def login(self, username: str, password: str) -> dict[str, Any]:
        return self.call("auth-service", "POST", "/v1/login", json={"username": username, "password": password})


def _user(api: _Api, admin: str, username: str, roles: list[str]) -> tuple[str, str]:
    """Create (or reset) a run user; its password and access token."""
    password = secrets.token_urlsafe(18)
    created = api.call("auth-service", "POST", "/v1/users", token=admin, ok=(201, 200, 409),
                       json={"username": username, "password": password, "roles": roles})
    if created is None or "error" in (created or {}):
        api.call("auth-service", "PATCH", f"/v1/users/{username}", token=admin,
                 json={"password": password, "roles": roles, "disabled": False})
    return password, api.login(username, password)["access_token"]


def _prices(api: _Api) -> dict[str, str]:
    """The venue's best bid and ask for the load symbol (orders are priced from them)."""
    book = api.call("kraken-venue", "GET", f"/admin/book/{VENUE_PAIR}")
    bid, ask = Decimal(book["bids"][0][0]), Decimal(book["asks"][0][0])
    tick = Decimal("0.1")
    return {"bid": str(bid), "ask": str(ask), "tick": str(tick),
            "resting_buy": str((bid * Decimal("0.9")).quantize(tick, ROUND_DOWN))}


def prepare(target: Target, components: list[str]) -> dict[str, Any]:
    """Make what the run's user classes need and return the context they read."""
    api = _Api(target)
    started = time.monotonic()
    admin = api.login("admin", target.admin_password)["access_token"]
    trader_pw, trader = _user(api, admin, "load-trader", ["trader"])
    _, risk = _user(api, admin, "load-risk", ["risk-officer"])
    ctx: dict[str, Any] = {
        "urls": {c: target.urls[c] for c in components if c in target.urls},
        "tokens": {"admin": admin, "trader": trader, "risk": risk},
        "trader": {"username": "load-trader", "password": trader_pw},
        "account": ACCOUNT, "symbol": SYMBOL, "strategy": STRATEGY, "namespace": NAMESPACE,
        "run_tag": secrets.token_hex(4),
    }
    wanted = set(components)
    if wanted & {"policy-service", "oms-service", "universe-service", "fees-service", "secrets-service"}:
        api.call("universe-service", "POST", f"/v1/instruments/{SYMBOL.replace('/', '%2F')}/approve", token=admin,
                 json={"reason": "load test instrument"})
        keys = api.call("secrets-service", "GET", f"/v1/accounts/{ACCOUNT}/kraken-keys", token=admin)
        if not keys["items"]:
            api.call("secrets-service", "POST", f"/v1/accounts/{ACCOUNT}/kraken-keys", token=admin, json={
                "label": "load", "api_key": base64.b64encode(os.urandom(42)).decode(),
                "private_key": base64.b64encode(os.urandom(64)).decode(), "permissions": ["query_funds", "trade"]})
            keys = api.call("secrets-service", "GET", f"/v1/accounts/{ACCOUNT}/kraken-keys", token=admin)
        ctx["key_id"] = keys["items"][0]["key_id"] if "key_id" in keys["items"][0] else keys["items"][0]["id"]
        if "policy-service" in target.urls:
            api.call("policy-service", "POST", "/v1/refresh", token=admin)
    if wanted & {"oms-service", "capital-allocator", "strategy-orchestrator"}:
        api.call("capital-allocator", "PUT", "/v1/portfolio", token=admin, json={"nav": "100000000"})
        _running_strategy(api, admin, STRATEGY, weight="1")
    if wanted & {"oms-service", "policy-service", "risk-service", "fees-service"}:
        ctx["prices"] = _prices(api)
    if "config-service" in wanted:
        for i in range(8):
            api.call("config-service", "PUT", f"/v1/config/{NAMESPACE}/key-{i}", token=admin, ok=(200, 201, 409),
                     json={"value": {"threshold": i, "enabled": True, "note": "load test"}})
    ctx["setup_s"] = round(time.monotonic() - started, 2)
    return ctx


def _running_strategy(api: _Api, token: str, strategy: str, weight: str) -> None:
    """Register ``strategy`` at the orchestrator (once) and have it running, with capital."""
    existing = api.call("strategy-orchestrator", "GET", f"/v1/strategies/{strategy}", token=token, ok=(200, 404))
    if existing is None or existing.get("error"):
        existing = api.call("strategy-orchestrator", "POST", "/v1/strategies", token=token, json={
            "id": strategy, "name": "load test market maker", "kind": "market_making", "params": {"spread_bps": 5},
            "accounts": [ACCOUNT], "symbols": [SYMBOL],
            "capital": {"weight": weight, "min_capital": "0", "max_capital": "10000000"}})
    # The orchestrator's service account may not set targets: a risk officer (here the admin) sets it first.
    api.call("capital-allocator", "PUT", f"/v1/strategies/{strategy}/target", token=token,
             json={"weight": weight, "min_capital": "0", "max_capital": "10000000"})
    if existing["state"] in ("registered", "stopped", "failed"):
        api.call("strategy-orchestrator", "POST", f"/v1/strategies/{strategy}/start", token=token,
                 json={"reason": "load test"})
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        state = api.call("strategy-orchestrator", "GET", f"/v1/strategies/{strategy}", token=token)
        if state["state"] == "running":
            return
        if state["state"] == "paused":
            api.call("strategy-orchestrator", "POST", f"/v1/strategies/{strategy}/resume", token=token, json={})
        elif state["state"] in ("failed", "stopped"):
            raise SetupFailed(f"load set-up: strategy {strategy} did not start: {state.get('state_reason')}",
                              hint="see `aether-sandbox logs strategy-orchestrator`")
        time.sleep(0.2)
    raise SetupFailed(f"load set-up: strategy {strategy} still not running after 30 s")
