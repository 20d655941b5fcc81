"""Calls to capital-allocator and oms-service, classified for the workflows.

Each call answers a :class:`CallResult`: ``ok`` (2xx), ``retry`` (the other
service is unreachable, timed out, answered 5xx / 408 / 429, or could not be
authenticated with auth-service: worth another attempt) or ``refused`` (any
other 4xx: the other service said no, and asking again will not change that).
Calls authenticate with the service account through the kit's ServiceClient.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from sandbox.services.kit.auth import ServiceClient
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.settings import KitSettings

Outcome = Literal["ok", "retry", "refused"]
TRANSIENT_STATUS = frozenset({408, 425, 429})
MAX_TEXT = 300


@dataclass
class CallResult:
    """What one call came back with."""

    outcome: Outcome
    status_code: int | None = None
    body: Any = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def code(self) -> str | None:
        """The other service's stable error code, when it sent one."""
        return self.body.get("error") if isinstance(self.body, dict) and isinstance(self.body.get("error"), str) else None

    def detail(self) -> dict[str, Any]:
        """A compact record of the call for ``workflow_steps.detail``."""
        out: dict[str, Any] = {**self.extra}
        if self.error:
            out["error"] = self.error
        return out


def _summary(resp: httpx.Response, body: Any) -> str:
    """``HTTP 409 nav_not_set: no portfolio NAV is set`` (bounded)."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        text = f"HTTP {resp.status_code} {body['error']}: {body.get('message', '')}"
    else:
        text = f"HTTP {resp.status_code}: {resp.text[:MAX_TEXT]}"
    return text[:MAX_TEXT]


def classify(resp: httpx.Response) -> CallResult:
    """A response as a :class:`CallResult` (pure; unit-tested)."""
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    status = resp.status_code
    if 200 <= status < 300:
        return CallResult("ok", status, body)
    error = _summary(resp, body)
    retry_code = isinstance(body, dict) and body.get("error") == "retry"
    if status >= 500 or status in TRANSIENT_STATUS or retry_code:
        return CallResult("retry", status, body, error)
    return CallResult("refused", status, body, error)


class Peer:
    """One other service: its name, and a ServiceClient when it is configured (else every call is refused)."""

    def __init__(self, name: str, env_name: str, base_url: str | None, kit: KitSettings, timeout_s: float) -> None:
        """``env_name`` is the variable that configures ``base_url`` (named in the refusal when it is missing)."""
        self.name = name
        self.base_url = base_url
        self.problem: str | None = None
        self.client: ServiceClient | None = None
        if base_url is None:
            self.problem = f"{env_name} is not set: {name} is not configured"
        else:
            try:
                self.client = ServiceClient(kit, base_url=base_url, timeout=timeout_s)
            except ValueError as exc:
                self.problem = str(exc)

    async def call(self, method: str, path: str, json: Any = None) -> CallResult:
        """Send one request with the service token and classify the outcome."""
        if self.client is None:
            return CallResult("refused", None, None, self.problem)
        try:
            resp = await self.client.request(method, path, json=json)
        except httpx.HTTPError as exc:
            return CallResult("retry", None, None, f"{self.name} unreachable: {type(exc).__name__}: {exc}"[:MAX_TEXT])
        except ServiceError as exc:  # the service token could not be obtained (auth-service down or refusing)
            return CallResult("retry", None, None, f"service token unavailable: {exc.message}"[:MAX_TEXT])
        except Exception as exc:  # a malformed answer from auth-service, say: recorded and retried, never fatal
            return CallResult("retry", None, None, f"{self.name} call failed: {type(exc).__name__}: {exc}"[:MAX_TEXT])
        return classify(resp)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        if self.client is not None:
            await self.client.aclose()
