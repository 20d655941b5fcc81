"""Account key permissions from secrets-service, cached in memory (stale-while-revalidate).

A check never waits for secrets-service while it holds an entry younger than
``max_stale_s``: an entry older than ``ttl_s`` is served as is and refreshed in
the background. Only an account seen for the first time (or not seen for
``max_stale_s``) costs one call, shared by concurrent checks of that account.
A failed fetch is remembered for ``failure_backoff_s`` so a secrets-service
outage does not put a timeout on every check. ``None`` means "unavailable".
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote

import httpx

from sandbox.services.policy.checks import Permissions

log = logging.getLogger("sandbox.services.policy.permissions")

Fetch = Callable[[str], Awaitable[Permissions]]


class PermissionsUnavailable(Exception):
    """secrets-service could not tell the account's permissions."""


class HttpGetter(Protocol):
    """What fetching needs from an HTTP client (the kit's ServiceClient fits)."""

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET ``url``."""
        ...


def parse_permissions(account: str, doc: Any) -> Permissions:
    """A :class:`Permissions` from secrets-service's ``{"account", "permissions", "keys"}`` document."""
    if not isinstance(doc, dict) or not isinstance(doc.get("permissions"), list):
        raise PermissionsUnavailable("secrets-service sent an unexpected permissions document")
    perms = doc["permissions"]
    if not all(isinstance(p, str) for p in perms):
        raise PermissionsUnavailable("secrets-service sent non-string permissions")
    keys = doc.get("keys")
    return Permissions(account, frozenset(perms), len(keys) if isinstance(keys, list) else 0)


def secrets_fetcher(client: HttpGetter, timeout_s: float) -> Fetch:
    """A fetch function over ``GET /v1/accounts/{account}/permissions`` (service token)."""

    async def fetch(account: str) -> Permissions:
        try:
            resp = await asyncio.wait_for(
                client.get(f"/v1/accounts/{quote(account, safe='')}/permissions"), timeout_s
            )
        except (httpx.HTTPError, TimeoutError) as exc:
            raise PermissionsUnavailable(f"secrets-service unreachable: {type(exc).__name__}") from exc
        except Exception as exc:  # e.g. no service token (auth-service down)
            raise PermissionsUnavailable(f"secrets-service call failed: {exc}") from exc
        if resp.status_code != 200:
            raise PermissionsUnavailable(f"secrets-service answered HTTP {resp.status_code}")
        try:
            doc = json.loads(resp.content, parse_float=Decimal)
        except ValueError as exc:
            raise PermissionsUnavailable("secrets-service sent invalid JSON") from exc
        return parse_permissions(account, doc)

    return fetch


class PermissionsCache:
    """Per-account permissions with a TTL, background refresh, bounded size and shared fetches."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        ttl_s: float,
        max_stale_s: float,
        max_entries: int = 50_000,
        failure_backoff_s: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        on_result: Callable[[str], None] | None = None,
    ) -> None:
        """``on_result(kind)`` is told ``hit``, ``stale``, ``miss`` or ``unavailable`` per lookup."""
        self._fetch = fetch
        self.ttl_s = ttl_s
        self.max_stale_s = max(max_stale_s, ttl_s)
        self.max_entries = max_entries
        self.failure_backoff_s = failure_backoff_s
        self._clock = clock
        self._on_result = on_result or (lambda _kind: None)
        self._entries: OrderedDict[str, tuple[Permissions, float]] = OrderedDict()
        self._failures: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[Permissions | None]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._generation = 0

    def __len__(self) -> int:
        """Cached accounts."""
        return len(self._entries)

    def peek(self, account: str) -> Permissions | None:
        """The cached entry regardless of age (no fetch)."""
        entry = self._entries.get(account)
        return entry[0] if entry else None

    async def get(self, account: str) -> Permissions | None:
        """The account's permissions, or None when secrets-service cannot tell and nothing usable is cached."""
        now = self._clock()
        entry = self._entries.get(account)
        if entry is not None:
            perms, at = entry
            age = now - at
            if age <= self.ttl_s:
                self._entries.move_to_end(account)
                self._on_result("hit")
                return perms
            if age <= self.max_stale_s:
                self._entries.move_to_end(account)
                self._refresh_in_background(account)
                self._on_result("stale")
                return perms
        failed = self._failures.get(account)
        if failed is not None and now - failed < self.failure_backoff_s:
            self._on_result("unavailable")
            return None
        result = await self._load(account)
        self._on_result("miss" if result is not None else "unavailable")
        return result

    def invalidate(self, account: str | None = None) -> int:
        """Forget one account (or all); returns how many entries were dropped."""
        self._generation += 1
        if account is None:
            dropped = len(self._entries)
            self._entries.clear()
            self._failures.clear()
            return dropped
        self._failures.pop(account, None)
        return 1 if self._entries.pop(account, None) is not None else 0

    async def prefetch(self, accounts: list[str], concurrency: int = 8) -> int:
        """Load ``accounts`` now (e.g. those with rules at start-up); returns how many loaded."""
        sem = asyncio.Semaphore(concurrency)

        async def one(acc: str) -> bool:
            async with sem:
                return await self._load(acc) is not None

        return sum(await asyncio.gather(*(one(a) for a in accounts)))

    def prefetch_later(self, accounts: list[str]) -> None:
        """:meth:`prefetch` in a background task (start-up must not wait for secrets-service)."""
        task = asyncio.get_running_loop().create_task(self.prefetch(accounts))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def refresh_later(self, account: str) -> None:
        """Fetch the account's permissions in the background (no-op while a fetch is running)."""
        self._refresh_in_background(account)

    def _refresh_in_background(self, account: str) -> None:
        if account in self._inflight:
            return
        task = asyncio.get_running_loop().create_task(self._load(account))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _load(self, account: str) -> Permissions | None:
        """One fetch per account at a time; concurrent callers share it."""
        pending = self._inflight.get(account)
        if pending is not None:
            return await asyncio.shield(pending)
        fut: asyncio.Future[Permissions | None] = asyncio.get_running_loop().create_future()
        self._inflight[account] = fut
        generation = self._generation
        result: Permissions | None = None
        try:
            perms = await self._fetch(account)
        except Exception as exc:  # PermissionsUnavailable, or anything unexpected: unavailable, never a 500
            log.warning("account permissions unavailable", extra={"account": account, "error": str(exc)[:300]})
            self._failures[account] = self._clock()
            entry = self._entries.get(account)
            if entry is not None and self._clock() - entry[1] > self.max_stale_s:
                self._entries.pop(account, None)  # too old to use any more
            result = self.peek(account)
        else:
            self._failures.pop(account, None)
            if generation == self._generation:  # not invalidated while fetching
                self._entries[account] = (perms, self._clock())
                self._entries.move_to_end(account)
                while len(self._entries) > self.max_entries:
                    self._entries.popitem(last=False)
            result = perms
        finally:
            self._inflight.pop(account, None)
            if not fut.done():
                fut.set_result(result)
        return result

    async def close(self) -> None:
        """Cancel background refreshes."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
