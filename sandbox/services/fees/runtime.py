"""The running fees-service: schedule cache, volume cache, fill recording and metrics, in one object.

Built by the ``on_startup`` hook (``app.state.fees``) and reached by route
handlers through the :data:`Fees` dependency.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any, Literal

import asyncpg
from fastapi import Depends, FastAPI, Request

from sandbox.services.fees.models import FillCreate
from sandbox.services.fees.pricing import FeeQuote, estimate_fee
from sandbox.services.fees.schedules import ScheduleNotFound, ScheduleStore, UniverseUnavailable
from sandbox.services.fees.settings import FeesSettings
from sandbox.services.fees.tiers import FeeSchedule, Liquidity
from sandbox.services.fees.volume import (
    AccountVolume,
    FillRecord,
    FillStatus,
    UsdRates,
    VolumeCache,
    query_volume,
    record_fills,
    to_record,
)
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.metrics import counter

log = logging.getLogger("sandbox.services.fees")


@dataclass
class Counters:
    """The service's own Prometheus counters."""

    fills: Any
    rejected: Any
    estimates: Any
    schedule_fetches: Any
    volume_cache: Any

    @classmethod
    def register(cls, app: FastAPI) -> Counters:
        """Create (once) the counters in the app's registry."""
        return cls(
            fills=counter(app, "fees_fills_total", "Fills received, by source and outcome.", ["source", "status"]),
            rejected=counter(
                app, "fees_fill_messages_rejected_total", "Kafka fill messages skipped as invalid.", ["reason"]
            ),
            estimates=counter(app, "fees_estimates_total", "Fee estimates served, by liquidity.", ["liquidity"]),
            schedule_fetches=counter(
                app, "fees_schedule_lookups_total", "Schedule lookups that missed the cache, by outcome.", ["outcome"]
            ),
            volume_cache=counter(app, "fees_volume_cache_total", "Volume reads by cache result.", ["result"]),
        )


class FeesRuntime:
    """Everything a request needs, created once per process."""

    def __init__(
        self, *, settings: FeesSettings, pool: asyncpg.Pool, schedules: ScheduleStore, counters: Counters
    ) -> None:
        """Wire the caches to the pool; nothing runs until the app's hooks start it."""
        self.settings = settings
        self.pool = pool
        self.schedules = schedules
        self.counters = counters
        self.rates = UsdRates()
        self.window = timedelta(days=settings.volume_window_days)
        self.volumes = VolumeCache(self._load_volume, ttl=settings.volume_cache_ttl_s)
        self.consumer: Any = None  # FillConsumer when Kafka is configured
        self.time_series = "unknown"

    async def _load_volume(self, account: str) -> AccountVolume:
        return await query_volume(self.pool, account, self.window)

    async def volume(self, account: str) -> AccountVolume:
        """The account's 30-day volume (cached for a couple of seconds)."""
        misses = self.volumes.misses
        result = await self.volumes.get(account)
        self.counters.volume_cache.labels("miss" if self.volumes.misses != misses else "hit").inc()
        return result

    async def schedule(self, symbol: str) -> FeeSchedule:
        """The schedule of ``symbol`` or a 404 / 503 :class:`ServiceError`."""
        cached = self.schedules.peek(symbol)
        if cached is not None:
            return cached
        try:
            found = await self.schedules.get(symbol)
        except ScheduleNotFound:
            self.counters.schedule_fetches.labels("not_found").inc()
            hint = "" if self.schedules.has_source else " (no universe-service configured: set one with PUT /v1/schedules)"
            raise ServiceError(404, "schedule_not_found", f"no fee schedule for {symbol}{hint}") from None
        except UniverseUnavailable as exc:
            self.counters.schedule_fetches.labels("error").inc()
            raise ServiceError(
                503, "universe_unavailable", f"cannot fetch the fee schedule of {symbol}: {exc}",
                headers={"Retry-After": "5"},
            ) from None
        self.counters.schedule_fetches.labels("fetched").inc()
        return found

    async def _quote_hint(self, symbol: str) -> str | None:
        """The quote of a slash-less symbol from its schedule (fetched when needed; None if unknown)."""
        if "/" in symbol:
            return None
        schedule = self.schedules.peek(symbol)
        if schedule is None and self.schedules.has_source:
            try:
                schedule = await self.schedules.get(symbol)
            except (ScheduleNotFound, UniverseUnavailable):
                schedule = None
        return schedule.quote if schedule is not None else None

    async def record(
        self, fills: Sequence[FillCreate], source: Literal["kafka", "http"]
    ) -> list[tuple[FillStatus, FillRecord]]:
        """Record fills idempotently; return each one's status and derived record; drop stale volumes."""
        hints = {s: await self._quote_hint(s) for s in {f.symbol for f in fills}}
        records = [to_record(f, source=source, quote_hint=hints[f.symbol], rates=self.rates) for f in fills]
        statuses = await record_fills(self.pool, records)
        outcomes = list(zip(statuses, records, strict=True))
        self.volumes.invalidate({r.account for st, r in outcomes if st == "recorded"})
        for outcome in ("recorded", "duplicate", "conflict"):
            count = statuses.count(outcome)
            if count:
                self.counters.fills.labels(source, outcome).inc(count)
        conflicts = [r.fill_id for st, r in outcomes if st == "conflict"]
        if conflicts:
            log.warning("fill ids reused with different content", extra={"fill_ids": conflicts[:20], "source": source})
        return outcomes

    async def estimate(
        self, *, account: str, symbol: str, qty: Any, price: Any, liquidity: Liquidity
    ) -> tuple[FeeSchedule, AccountVolume, FeeQuote]:
        """Schedule, volume and the fee quote for an order."""
        schedule = await self.schedule(symbol)
        volume = await self.volume(account)
        quote = estimate_fee(
            schedule, qty=qty, price=price, liquidity=liquidity,
            volume_usd=volume.volume_usd, rounding=self.settings.fee_rounding,
        )
        self.counters.estimates.labels(liquidity).inc()
        return schedule, volume, quote


async def get_fees(request: Request) -> FeesRuntime:
    """Dependency: the app's :class:`FeesRuntime` (503 while starting)."""
    runtime = getattr(request.app.state, "fees", None)
    if runtime is None:
        raise ServiceError(503, "starting", "fees-service is starting")
    return runtime


Fees = Annotated[FeesRuntime, Depends(get_fees)]


async def cancel_quietly(task: asyncio.Task[Any] | None) -> None:
    """Cancel a background task and wait for it."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):
        pass
