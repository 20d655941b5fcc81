"""Calls to the platform services (policy, risk, fees, capital-allocator) with the service account's token.

The token comes from the kit's :class:`~sandbox.services.kit.auth.ServiceClient`
(cached until shortly before it expires); the requests go through the OMS's
own keep-alive pools (:mod:`.http_client`), one per service, because they are on
every order's path. A 401 fetches a fresh token and retries once.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sandbox.services.kit import decimal_json
from sandbox.services.kit.auth import ServiceClient
from sandbox.services.kit.settings import KitSettings
from sandbox.services.kit.tracing import inject_headers
from sandbox.services.oms.http_client import HttpError, HttpPool

log = logging.getLogger("sandbox.services.oms.upstream")


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# One encoder for every call (``json.dumps`` with options builds a new one each time).
_ENCODER = json.JSONEncoder(default=_default, separators=(",", ":"))


def dumps(doc: Any) -> bytes:
    """JSON with Decimals as plain strings."""
    return _ENCODER.encode(doc).encode()


class UpstreamError(Exception):
    """A platform service could not be asked (unreachable, timeout, 5xx, no token)."""

    def __init__(self, service: str, message: str) -> None:
        super().__init__(f"{service}: {message}")
        self.service = service


@dataclass(frozen=True)
class Reply:
    """A parsed JSON answer."""

    status: int
    body: Any


class Upstreams:
    """One pool per configured service, sharing the service token."""

    def __init__(self, kit: KitSettings, urls: dict[str, str | None], *, timeout: float) -> None:
        """``urls`` maps a service name (policy, risk, fees, capital) to its base URL (None = not configured)."""
        self.timeout = timeout
        self.pools = {name: HttpPool(url, timeout=timeout, headers=False) for name, url in urls.items() if url}
        self._tokens: ServiceClient | None = None
        if self.pools:
            self._tokens = ServiceClient(kit, timeout=timeout)

    def configured(self, service: str) -> bool:
        """Whether ``service`` has a URL."""
        return service in self.pools

    async def _token(self, fresh: bool = False) -> str:
        assert self._tokens is not None
        try:
            return await self._tokens.token(fresh=fresh)
        except Exception as exc:  # noqa: BLE001 - auth down or misconfigured: the caller fails closed
            raise UpstreamError("auth", f"no service token: {exc}") from None

    async def call(self, service: str, method: str, path: str, doc: Any = None, *,
                   timeout: float | None = None) -> Reply:
        """``method path`` on ``service`` with a JSON body; raises :class:`UpstreamError` when unanswered or 5xx."""
        pool = self.pools.get(service)
        if pool is None:
            raise UpstreamError(service, "not configured")
        body = dumps(doc) if doc is not None else None
        for attempt in range(2):
            headers = {"Authorization": f"Bearer {await self._token(fresh=attempt > 0)}", "Accept": "application/json"}
            if body is not None:
                headers["Content-Type"] = "application/json"
            inject_headers(headers)
            try:
                resp = await pool.request(method, path, headers=headers, body=body, timeout=timeout, idempotent=True)
            except HttpError as exc:
                raise UpstreamError(service, str(exc)) from None
            if resp.status == 401 and attempt == 0:
                continue
            if resp.status >= 500:
                raise UpstreamError(service, f"HTTP {resp.status}: {resp.body[:200]!r}")
            try:
                parsed = decimal_json.loads(resp.body) if resp.body else None
            except ValueError:
                raise UpstreamError(service, f"HTTP {resp.status}: the answer is not JSON") from None
            return Reply(resp.status, parsed)
        raise UpstreamError(service, "rejected the service token")  # pragma: no cover - loop always returns

    async def aclose(self) -> None:
        """Close the pools and the token client."""
        for pool in self.pools.values():
            await pool.aclose()
        if self._tokens is not None:
            await self._tokens.aclose()
