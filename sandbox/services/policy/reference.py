"""Reference data held in memory: instruments (universe-service) and the venue-wide status.

Both are refreshed by background loops (every ``universe_poll_s`` /
``venue_poll_s``) and on demand (``POST /v1/refresh``); a check only reads the
current immutable snapshot. A failed refresh keeps the last good data and
records the error (shown by ``GET /v1/reference``). The instrument listing is
hashed, so an unchanged listing is not parsed again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol

import httpx

from sandbox.services.policy.checks import SYSTEM_STATES
from sandbox.services.policy.instruments import Snapshot, parse_listing

log = logging.getLogger("sandbox.services.policy.reference")

#: Page size of ``GET /v1/instruments`` (universe-service's maximum).
PAGE = 5000
#: Upper bound on pages fetched in one refresh (25 million instruments: a runaway guard).
MAX_PAGES = 5000


class UpstreamError(Exception):
    """An upstream service could not deliver usable data."""


class HttpGetter(Protocol):
    """What loading needs from an HTTP client (ServiceClient or httpx.AsyncClient)."""

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET ``url``."""
        ...


def _json(resp: httpx.Response, what: str) -> Any:
    if resp.status_code != 200:
        raise UpstreamError(f"{what} answered HTTP {resp.status_code}")
    try:
        return json.loads(resp.content, parse_float=Decimal)
    except ValueError as exc:
        raise UpstreamError(f"{what} sent invalid JSON") from exc


async def fetch_listing(client: HttpGetter, timeout_s: float) -> tuple[list[Any], str]:
    """Every instrument from universe-service (all pages) and a digest of the raw pages."""
    items: list[Any] = []
    digest = hashlib.sha256()
    offset = 0
    for _ in range(MAX_PAGES):
        try:
            resp = await asyncio.wait_for(client.get("/v1/instruments", params={"limit": PAGE, "offset": offset}),
                                          timeout_s)
        except (httpx.HTTPError, TimeoutError) as exc:
            raise UpstreamError(f"universe-service unreachable: {type(exc).__name__}") from exc
        except UpstreamError:
            raise
        except Exception as exc:  # e.g. no service token (auth-service down)
            raise UpstreamError(f"universe-service call failed: {exc}") from exc
        digest.update(resp.content)
        doc = _json(resp, "universe-service")
        page = doc.get("items") if isinstance(doc, dict) else None
        total = doc.get("total") if isinstance(doc, dict) else None
        if not isinstance(page, list) or not isinstance(total, int):
            raise UpstreamError("universe-service sent an unexpected instrument listing")
        items.extend(page)
        offset += len(page)
        if not page or offset >= total:
            return items, digest.hexdigest()
    raise UpstreamError("universe-service listing did not end")


async def fetch_system_status(client: HttpGetter, venue_url: str, timeout_s: float) -> str:
    """The venue-wide status from Kraken's ``GET /0/public/SystemStatus``."""
    try:
        resp = await asyncio.wait_for(client.get(f"{venue_url}/0/public/SystemStatus"), timeout_s)
    except (httpx.HTTPError, TimeoutError) as exc:
        raise UpstreamError(f"venue unreachable: {type(exc).__name__}") from exc
    doc = _json(resp, "venue")
    errors = doc.get("error") if isinstance(doc, dict) else None
    if errors:
        raise UpstreamError(f"venue SystemStatus error: {str(errors)[:200]}")
    result = doc.get("result") if isinstance(doc, dict) else None
    status = result.get("status") if isinstance(result, dict) else None
    if status not in SYSTEM_STATES:
        raise UpstreamError(f"venue SystemStatus {str(status)[:40]!r} is not a known state")
    return status


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ReferenceData:
    """The instrument snapshot and the venue status, with their refresh loops."""

    def __init__(
        self,
        *,
        universe: HttpGetter,
        venue: HttpGetter | None,
        venue_url: str | None,
        timeout_s: float,
        on_refresh: Callable[[str, str], None] | None = None,
    ) -> None:
        """``on_refresh(source, outcome)`` is told about each refresh (metrics)."""
        self._universe = universe
        self._venue = venue
        self.venue_url = venue_url
        self.timeout_s = timeout_s
        self._on_refresh = on_refresh or (lambda _s, _o: None)
        self.snapshot = Snapshot([])
        self.loaded_at: datetime | None = None
        self.error: str | None = None
        self.venue_status: str | None = None
        self.venue_status_at: datetime | None = None
        self.venue_error: str | None = None
        self._lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def loaded(self) -> bool:
        """Whether instruments were loaded at least once."""
        return self.loaded_at is not None

    async def refresh_instruments(self) -> bool:
        """Reload instruments; True when the listing changed. Raises :class:`UpstreamError` (last data kept)."""
        async with self._lock:
            try:
                items, digest = await fetch_listing(self._universe, self.timeout_s)
            except UpstreamError as exc:
                self.error = str(exc)
                self._on_refresh("universe", "failed")
                raise
            self.error = None
            self.loaded_at = _now()
            if digest == self.snapshot.digest:
                self._on_refresh("universe", "unchanged")
                return False
            instruments, skipped = parse_listing(items)
            for name, reason in skipped:
                log.warning("instrument skipped", extra={"pair_key": name, "reason": reason})
            self.snapshot = Snapshot(instruments, skipped=skipped, digest=digest)
            self._on_refresh("universe", "changed")
            log.info("instruments loaded", extra={"count": len(instruments), "skipped": len(skipped)})
            return True

    async def refresh_venue(self) -> str | None:
        """Reload the venue-wide status (None when no venue is configured); keeps the last one on failure."""
        if self._venue is None or self.venue_url is None:
            return None
        try:
            status = await fetch_system_status(self._venue, self.venue_url, self.timeout_s)
        except UpstreamError as exc:
            self.venue_error = str(exc)
            self._on_refresh("venue", "failed")
            raise
        if status != self.venue_status:
            log.info("venue status", extra={"status": status, "previous": self.venue_status})
        self.venue_status, self.venue_status_at, self.venue_error = status, _now(), None
        self._on_refresh("venue", "ok")
        return status

    def start(self, universe_poll_s: float, venue_poll_s: float) -> None:
        """Start the refresh loops."""
        # until the first load succeeds, retry at least every second (the replica is not ready meanwhile)
        self._tasks.append(asyncio.create_task(
            self._loop(self.refresh_instruments, lambda: universe_poll_s if self.loaded else min(universe_poll_s, 1.0)),
            name="policy-universe-poll"))
        if self._venue is not None and self.venue_url is not None:
            self._tasks.append(asyncio.create_task(self._loop(self.refresh_venue, lambda: venue_poll_s),
                                                   name="policy-venue-poll"))

    async def stop(self) -> None:
        """Stop the refresh loops."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    @staticmethod
    async def _loop(refresh: Callable[[], Awaitable[object]], period_s: Callable[[], float]) -> None:
        while True:
            await asyncio.sleep(period_s())
            try:
                await refresh()
            except UpstreamError as exc:
                log.warning("reference refresh failed", extra={"error": str(exc)})
            except Exception:  # a loop must survive anything; the error is logged
                log.exception("reference refresh crashed")
