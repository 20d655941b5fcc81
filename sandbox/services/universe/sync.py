"""Syncing instruments from the venue's ``public/AssetPairs``.

The venue is fetched before any database work; only a complete, well-formed
response reaches the database, where the diff is planned and written in one
transaction under an advisory lock (replicas syncing together take turns and
the second finds everything unchanged).  A venue that is down or answers
nonsense is a 503 / 502 and leaves the stored instruments untouched.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx

from sandbox.services.kit.errors import ServiceError
from sandbox.services.universe import repository
from sandbox.services.universe.catalog import Catalog
from sandbox.services.universe.models import SkippedPairPublic, SyncReport
from sandbox.services.universe.venue_pairs import (
    ParsedPairs,
    VenueFormatError,
    VenueReportedError,
    parse_assetpairs,
    plan_sync,
)

log = logging.getLogger("sandbox.services.universe.sync")

#: Largest AssetPairs body accepted (Kraken's full response is ~2 MB).
MAX_BODY_BYTES = 32 * 1024 * 1024
#: Kraken errors meaning "try again later" rather than "your request or my data is wrong".
TRANSIENT_ERRORS = ("EService:Unavailable", "EService:Busy", "EService:Market in cancel_only mode",
                    "EGeneral:Temporary lockout", "EAPI:Rate limit exceeded")


def venue_unavailable(message: str) -> ServiceError:
    """503: the venue could not be reached or is temporarily not serving."""
    return ServiceError(503, "venue_unavailable", message, headers={"Retry-After": "5"})


def venue_bad_response(message: str) -> ServiceError:
    """502: the venue answered, but not with a usable AssetPairs response."""
    return ServiceError(502, "venue_bad_response", message)


async def fetch_assetpairs(http: httpx.AsyncClient, url: str, timeout_s: float) -> ParsedPairs:
    """GET the AssetPairs response and parse it; venue problems as 503/502 :class:`ServiceError`."""
    try:
        async with http.stream("GET", url, timeout=timeout_s, headers={"Accept": "application/json"}) as resp:
            if resp.status_code in (502, 503, 504, 429):
                raise venue_unavailable(f"the venue at {url} answered HTTP {resp.status_code}")
            if resp.status_code != 200:
                raise venue_bad_response(f"the venue at {url} answered HTTP {resp.status_code}")
            chunks: list[bytes] = []
            size = 0
            async for chunk in resp.aiter_bytes():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise venue_bad_response(f"the venue's AssetPairs response exceeds {MAX_BODY_BYTES} bytes")
                chunks.append(chunk)
    except httpx.TimeoutException as exc:
        raise venue_unavailable(f"the venue at {url} did not answer within {timeout_s:g} s") from exc
    except httpx.HTTPError as exc:
        raise venue_unavailable(f"the venue at {url} is unreachable: {type(exc).__name__}: {exc}") from exc
    try:
        parsed = parse_assetpairs(b"".join(chunks))
    except VenueReportedError as exc:
        if any(e.startswith(TRANSIENT_ERRORS) for e in exc.errors):
            raise venue_unavailable(f"the venue reported: {exc}") from exc
        raise venue_bad_response(f"the venue reported: {exc}") from exc
    except VenueFormatError as exc:
        raise venue_bad_response(f"the venue's AssetPairs response is malformed: {exc}") from exc
    if not parsed.pairs:
        # Taking an empty (or entirely invalid) listing at its word would delist everything.
        raise venue_bad_response(
            f"the venue listed no usable pairs ({len(parsed.skipped)} skipped); stored instruments kept",
        )
    return parsed


@dataclass
class Syncer:
    """Runs syncs for one replica (one at a time) and counts them."""

    pool: asyncpg.Pool
    catalog: Catalog
    http: httpx.AsyncClient
    url: str
    timeout_s: float
    observe: Any = None  # callable(report: SyncReport) for metrics
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last: SyncReport | None = None

    async def sync(self, trigger: str, actor: str) -> SyncReport:
        """Fetch, diff, write and reload; the report (raises 502/503 ServiceError on venue failures)."""
        async with self.lock:
            started = datetime.now(UTC)
            t0 = time.perf_counter()
            try:
                parsed = await fetch_assetpairs(self.http, self.url, self.timeout_s)
            except ServiceError as exc:
                report = await self._failed(trigger, actor, started, t0, exc)
                log.warning("sync failed", extra={"trigger": trigger, "error": exc.message, "status": exc.status})
                raise ServiceError(exc.status, exc.code, exc.message, detail=report.model_dump(mode="json"),
                                   headers=exc.headers) from None
            audit_actor = f"sync:{actor}"
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", repository.SYNC_LOCK_KEY)
                stored = await repository.stored_pairs(conn)
                plan = plan_sync(stored, parsed.pairs, keep={s.pair_key for s in parsed.skipped})
                revision = await repository.apply_plan(conn, plan, audit_actor, started)
                fields: dict[str, Any] = {
                    "trigger": trigger, "actor": actor, "outcome": "ok", "added": len(plan.added),
                    "updated": len(plan.updated), "unchanged": len(plan.unchanged),
                    "delisted": len(plan.delisted), "total": len(parsed.pairs) + len(parsed.skipped),
                    "skipped": parsed.skipped, "error": None, "started_at": started,
                    "finished_at": datetime.now(UTC),
                }
                run_id = await repository.record_sync_run(conn, fields)
            if revision is not None:
                await self.catalog.reload("sync", min_revision=revision)
            report = self._report(fields, run_id, t0)
            counts = ("trigger", "added", "updated", "unchanged", "delisted")
            log.info("sync done", extra={k: fields[k] for k in counts})
            return report

    def _report(self, fields: dict[str, Any], run_id: int | None, t0: float) -> SyncReport:
        report = SyncReport(
            id=run_id,
            **{k: v for k, v in fields.items() if k != "skipped"},
            skipped=[SkippedPairPublic(pair_key=s.pair_key, reason=s.reason) for s in fields["skipped"]],
            duration_ms=round((time.perf_counter() - t0) * 1000, 3),
        )
        self.last = report
        if self.observe is not None:
            self.observe(report)
        return report

    async def _failed(self, trigger: str, actor: str, started: datetime, t0: float, exc: ServiceError) -> SyncReport:
        fields: dict[str, Any] = {
            "trigger": trigger, "actor": actor, "outcome": "failed", "added": 0, "updated": 0, "unchanged": 0,
            "delisted": 0, "total": 0, "skipped": [], "error": exc.message, "started_at": started,
            "finished_at": datetime.now(UTC),
        }
        run_id = None
        try:
            run_id = await repository.record_sync_run(self.pool, fields)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as db_exc:
            log.warning("cannot record the failed sync", extra={"error": str(db_exc)})
        return self._report(fields, run_id, t0)

    async def retry_until_synced(self, max_pause_s: float) -> None:
        """Background task after a failed start-up sync: retry with back-off until one succeeds."""
        pause = 1.0
        while True:
            await asyncio.sleep(pause)
            try:
                await self.sync("retry", "startup")
                return
            except ServiceError:
                pause = min(pause * 2, max_pause_s)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("sync retry hit a database error", extra={"error": str(exc)})
                pause = min(pause * 2, max_pause_s)
