"""The schedule cache: every fee schedule in memory, persisted in PostgreSQL, filled from universe-service.

Reads never wait on the database. A schedule comes from one of two sources:

* ``universe`` – fetched from universe-service on first use (one fetch per
  symbol at a time), stored, and re-fetched in the background once older than
  the TTL; when universe-service is down the last stored copy keeps serving;
* ``manual`` – set by an admin with ``PUT /v1/schedules/{symbol}``; it pins the
  schedule (universe fetches do not overwrite it) until deleted.

An unknown symbol is remembered as unknown for a short time so a burst of
requests for it costs universe-service one call. Replicas converge through a
periodic reload from the database (manual changes on another replica show up
within ``FEES_SCHEDULE_RELOAD_SECONDS``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Protocol

import asyncpg

from sandbox.services.fees.tiers import FeeSchedule, FeeTier, tiers_as_pairs, to_decimal

log = logging.getLogger("sandbox.services.fees.schedules")


class ScheduleNotFound(LookupError):
    """No schedule for the symbol here nor at universe-service."""


class UniverseUnavailable(RuntimeError):
    """universe-service could not be asked (down, timeout, bad answer)."""


class ScheduleSource(Protocol):
    """Where schedules come from when not cached (universe-service)."""

    async def fetch(self, symbol: str) -> FeeSchedule | None:
        """The schedule of ``symbol``; None when the source does not know it; raise UniverseUnavailable."""
        ...


_COLUMNS = "symbol, quote, quote_decimals, fee_volume_currency, taker, maker, source, updated_at"

_UPSERT = f"""
INSERT INTO fee_schedules ({_COLUMNS})
VALUES ($1, $2, $3, $4, $5::jsonb, $6::jsonb, $7, now())
ON CONFLICT (symbol) DO UPDATE SET
    quote = EXCLUDED.quote, quote_decimals = EXCLUDED.quote_decimals,
    fee_volume_currency = EXCLUDED.fee_volume_currency, taker = EXCLUDED.taker, maker = EXCLUDED.maker,
    source = EXCLUDED.source, updated_at = now()
"""


def _tiers_from_json(raw: object) -> tuple[FeeTier, ...]:
    data = json.loads(raw) if isinstance(raw, str) else raw
    return tuple(FeeTier(to_decimal(v), to_decimal(p)) for v, p in data)  # type: ignore[union-attr]


def schedule_from_row(row: asyncpg.Record) -> FeeSchedule:
    """A domain schedule from a ``fee_schedules`` row."""
    return FeeSchedule(
        symbol=row["symbol"],
        quote=row["quote"],
        quote_decimals=row["quote_decimals"],
        taker=_tiers_from_json(row["taker"]),
        maker=_tiers_from_json(row["maker"]),
        fee_volume_currency=row["fee_volume_currency"],
        source=row["source"],
        updated_at=row["updated_at"],
    )


def _row_args(schedule: FeeSchedule) -> tuple[object, ...]:
    return (
        schedule.symbol, schedule.quote, schedule.quote_decimals, schedule.fee_volume_currency,
        json.dumps(tiers_as_pairs(schedule.taker)), json.dumps(tiers_as_pairs(schedule.maker)), schedule.source,
    )


class ScheduleRepository(Protocol):
    """Persistence of schedules (PostgreSQL in the service, a dict in unit tests)."""

    async def load_all(self) -> list[FeeSchedule]:
        """Every stored schedule."""
        ...

    async def store_fetched(self, schedule: FeeSchedule) -> FeeSchedule:
        """Store a schedule from universe-service unless a manual one pins the symbol; return what is stored."""
        ...

    async def put_manual(self, schedule: FeeSchedule) -> tuple[FeeSchedule, bool]:
        """Create or replace a manual schedule; return it and whether it is new."""
        ...

    async def delete(self, symbol: str) -> FeeSchedule | None:
        """Remove a schedule; return it (None when there was none)."""
        ...


class PgScheduleRepository:
    """:class:`ScheduleRepository` on the ``fee_schedules`` table."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        """Use ``pool`` for every statement."""
        self._pool = pool

    async def load_all(self) -> list[FeeSchedule]:
        """Every usable stored schedule (a row edited by hand into nonsense is skipped with a warning)."""
        out: list[FeeSchedule] = []
        for row in await self._pool.fetch(f"SELECT {_COLUMNS} FROM fee_schedules"):
            try:
                out.append(schedule_from_row(row))
            except (ValueError, TypeError) as exc:
                log.warning("unusable stored schedule skipped", extra={"symbol": row["symbol"], "error": str(exc)})
        return out

    async def store_fetched(self, schedule: FeeSchedule) -> FeeSchedule:
        """Upsert a fetched schedule in one transaction, leaving a manual one in place."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM fee_schedules WHERE symbol = $1 FOR UPDATE", schedule.symbol
            )
            if row is not None and row["source"] == "manual":
                return schedule_from_row(row)
            await conn.execute(_UPSERT, *_row_args(schedule))
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM fee_schedules WHERE symbol = $1", schedule.symbol)
        return schedule_from_row(row)

    async def put_manual(self, schedule: FeeSchedule) -> tuple[FeeSchedule, bool]:
        """Upsert a manual schedule in one transaction."""
        async with self._pool.acquire() as conn, conn.transaction():
            existed = await conn.fetchval("SELECT 1 FROM fee_schedules WHERE symbol = $1 FOR UPDATE", schedule.symbol)
            await conn.execute(_UPSERT, *_row_args(schedule))
            row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM fee_schedules WHERE symbol = $1", schedule.symbol)
        return schedule_from_row(row), existed is None

    async def delete(self, symbol: str) -> FeeSchedule | None:
        """Delete a schedule row."""
        row = await self._pool.fetchrow(f"DELETE FROM fee_schedules WHERE symbol = $1 RETURNING {_COLUMNS}", symbol)
        return schedule_from_row(row) if row is not None else None


class ScheduleStore:
    """In-memory schedules backed by a repository, filled on demand from a :class:`ScheduleSource`."""

    def __init__(
        self,
        repository: ScheduleRepository,
        source: ScheduleSource | None,
        *,
        ttl_s: float = 300.0,
        miss_ttl_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``source`` None: only manual schedules exist."""
        self._repo = repository
        self._source = source
        self._ttl = ttl_s
        self._miss_ttl = miss_ttl_s
        self._clock = clock
        self._items: dict[str, FeeSchedule] = {}
        self._fetched: dict[str, float] = {}
        self._misses: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Future[FeeSchedule | None]] = {}
        self._writes = 0  # local writes; a reload that raced one is discarded
        self.fetches = 0
        self.fetch_failures = 0

    @property
    def has_source(self) -> bool:
        """Whether schedules can come from universe-service."""
        return self._source is not None

    def peek(self, symbol: str) -> FeeSchedule | None:
        """The cached schedule of ``symbol`` (no fetch)."""
        return self._items.get(symbol)

    def all(self) -> list[FeeSchedule]:
        """Every cached schedule, by symbol."""
        return [self._items[s] for s in sorted(self._items)]

    async def load(self) -> int:
        """Replace the cache with the stored schedules; return how many.

        When this replica changed a schedule while the query ran, the result
        is discarded (it may predate that change); the next reload applies.
        """
        writes = self._writes
        stored = await self._repo.load_all()
        if writes != self._writes:
            return len(self._items)
        items = {schedule.symbol: schedule for schedule in stored}
        for symbol, schedule in items.items():
            if schedule.source == "universe" and symbol not in self._fetched:
                self._fetched[symbol] = float("-inf")  # stored by an earlier run: refresh in the background
        self._items = items
        return len(items)

    async def get(self, symbol: str) -> FeeSchedule:
        """The schedule of ``symbol``: cached, else fetched from universe-service (once at a time).

        Raises :class:`ScheduleNotFound` or :class:`UniverseUnavailable`.
        """
        cached = self._items.get(symbol)
        if cached is not None:
            return cached
        if self._source is None:
            raise ScheduleNotFound(symbol)
        miss_until = self._misses.get(symbol)
        if miss_until is not None and miss_until > self._clock():
            raise ScheduleNotFound(symbol)
        schedule = await self._fetch_once(symbol)
        if schedule is None:
            raise ScheduleNotFound(symbol)
        return schedule

    async def _fetch_once(self, symbol: str) -> FeeSchedule | None:
        """Fetch and store ``symbol`` from the source, coalescing concurrent callers."""
        pending = self._inflight.get(symbol)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[FeeSchedule | None] = asyncio.get_running_loop().create_future()
        self._inflight[symbol] = future
        try:
            result = await self._fetch_and_store(symbol)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here: only waiters re-raise it
            raise
        finally:
            self._inflight.pop(symbol, None)
        future.set_result(result)
        return result

    async def _fetch_and_store(self, symbol: str) -> FeeSchedule | None:
        assert self._source is not None
        self.fetches += 1
        try:
            fetched = await self._source.fetch(symbol)
        except UniverseUnavailable:
            self.fetch_failures += 1
            raise
        if fetched is None:
            self._misses[symbol] = self._clock() + self._miss_ttl
            if len(self._misses) > 10_000:  # bounded: forget the oldest half
                for key in list(self._misses)[:5_000]:
                    self._misses.pop(key, None)
            return None
        self._misses.pop(symbol, None)
        stored = await self._repo.store_fetched(fetched)
        self._items[symbol] = stored
        if stored.source == "universe":
            self._fetched[symbol] = self._clock()
        self._writes += 1
        return stored

    async def put_manual(self, schedule: FeeSchedule) -> tuple[FeeSchedule, bool]:
        """Store an admin's schedule (source ``manual``); return it and whether it is new."""
        stored, created = await self._repo.put_manual(schedule)
        self._items[stored.symbol] = stored
        self._fetched.pop(stored.symbol, None)
        self._misses.pop(stored.symbol, None)
        self._writes += 1
        return stored, created

    async def delete(self, symbol: str) -> FeeSchedule | None:
        """Remove a schedule (the next use fetches it from universe-service again); return what was removed."""
        removed = await self._repo.delete(symbol)
        self._items.pop(symbol, None)
        self._fetched.pop(symbol, None)
        self._writes += 1
        return removed

    def stale(self) -> list[str]:
        """Symbols fetched from universe-service longer ago than the TTL."""
        horizon = self._clock() - self._ttl
        return [s for s, at in self._fetched.items() if at <= horizon and s in self._items]

    async def refresh_stale(self) -> int:
        """Re-fetch stale universe schedules one by one; keep the old copy when a fetch fails."""
        if self._source is None:
            return 0
        refreshed = 0
        for symbol in self.stale():
            current = self._items.get(symbol)
            if current is None or current.source != "universe":
                self._fetched.pop(symbol, None)
                continue
            try:
                result = await self._fetch_once(symbol)
            except UniverseUnavailable as exc:
                log.warning(
                    "schedule refresh failed, keeping the cached copy", extra={"symbol": symbol, "error": str(exc)}
                )
                self._fetched[symbol] = self._clock() - self._ttl + min(self._ttl, 30.0)  # retry in <= 30 s
                continue
            if result is None:
                # universe no longer knows it: keep serving the last copy, but do not refetch each cycle
                self._fetched[symbol] = self._clock()
            refreshed += 1
        return refreshed

    async def run_background(self, period_s: float, stop: asyncio.Event) -> None:
        """Until ``stop``: reload from the database and refresh stale universe schedules every ``period_s``."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=period_s)
                return
            except TimeoutError:
                pass
            try:
                await self.load()
                await self.refresh_stale()
            except Exception as exc:  # the loop must survive a database blip
                log.warning("schedule maintenance failed", extra={"error": f"{type(exc).__name__}: {exc}"})
