"""Fills in, 30-day volume out: idempotent ingestion and a cached volume per account.

Volume is Kraken's: the USD value of every fill of the account over the last
30 days, across all instruments. A fill's USD value is fixed when it is
recorded: ``qty * price`` when the quote is USD; times ``quote_usd_rate`` when
the fill carries one; times the last price seen for ``{quote}/USD`` when this
service has recorded a fill on such a pair; otherwise it stays *unpriced*
(reported per quote currency, not counted) rather than guessed.

Reads are served from a small per-account cache (TTL, LRU bound) so estimates
cost no database round trip in the steady state; a replica drops an account's
entry as soon as it records a fill for it, other replicas within the TTL.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Literal

import asyncpg

from sandbox.services.fees.models import FillCreate
from sandbox.services.fees.pricing import notional
from sandbox.services.fees.tiers import KRAKEN_LEGACY_CODES, USD_CODES, normalise_currency, plain

FillStatus = Literal["recorded", "duplicate", "conflict"]


@dataclass(frozen=True, slots=True)
class FillRecord:
    """A validated fill with its derived values, ready to insert."""

    fill_id: str
    account: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal
    fee: Decimal
    liquidity: str
    quote: str
    notional: Decimal
    usd_notional: Decimal | None
    ts: datetime
    source: Literal["kafka", "http"]
    digest: str


@dataclass(frozen=True, slots=True)
class AccountVolume:
    """An account's volume over the window, as of ``as_of``."""

    account: str
    volume_usd: Decimal
    fill_count: int
    unpriced: dict[str, Decimal]
    as_of: datetime


def split_symbol(symbol: str, quote_hint: str | None = None) -> tuple[str, str]:
    """(base, quote) of ``BTC/USD``; for slash-less names (``XBTUSD``) the quote must be hinted.

    Returns ``("", "")`` parts it cannot determine.
    """
    if "/" in symbol:
        base, quote = symbol.split("/", 1)
        return normalise_currency(base), normalise_currency(quote)
    if quote_hint:
        hint = quote_hint.upper()
        upper = symbol.upper()
        legacy = "Z" + hint  # pair keys like XXBTZUSD: a legacy base code, then the Z-prefixed quote
        if upper.endswith(legacy) and upper[: -len(legacy)] in KRAKEN_LEGACY_CODES:
            return normalise_currency(upper[: -len(legacy)]), hint
        if upper.endswith(hint) and len(upper) > len(hint):
            return normalise_currency(upper[: -len(hint)]), hint
        return "", hint
    return "", ""


def fill_digest(fill: FillCreate) -> str:
    """A content hash of a fill, to tell a replay (same content) from a conflicting reuse of an id."""
    parts = [
        fill.fill_id, fill.account, fill.symbol, fill.side,
        plain(fill.qty.normalize()), plain(fill.price.normalize()), plain(fill.fee.normalize()),
        fill.liquidity, fill.ts.astimezone(timezone.utc).isoformat(),
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


class UsdRates:
    """USD per unit of a currency, learned from the last fill price of ``{currency}/USD`` pairs."""

    def __init__(self) -> None:
        """Start with USD itself only."""
        self._rates: dict[str, Decimal] = {}

    def rate(self, currency: str) -> Decimal | None:
        """USD per unit of ``currency``, or None when unknown."""
        if currency in USD_CODES:
            return Decimal(1)
        return self._rates.get(currency)

    def learn(self, base: str, quote: str, price: Decimal) -> None:
        """Remember ``price`` as the USD rate of ``base`` when ``quote`` is USD."""
        if base and quote in USD_CODES and base not in USD_CODES:
            self._rates[base] = price

    def snapshot(self) -> dict[str, Decimal]:
        """A copy of the learned rates."""
        return dict(self._rates)


def to_record(
    fill: FillCreate, *, source: Literal["kafka", "http"], quote_hint: str | None, rates: UsdRates
) -> FillRecord:
    """Derive quote, notional and USD value of a fill (and teach ``rates`` from USD pairs)."""
    base, quote = split_symbol(fill.symbol, quote_hint)
    value = notional(fill.qty, fill.price)
    if fill.quote_usd_rate is not None:
        usd: Decimal | None = notional(value, fill.quote_usd_rate)
    else:
        rate = rates.rate(quote) if quote else None
        usd = notional(value, rate) if rate is not None else None
    rates.learn(base, quote, fill.price)
    return FillRecord(
        fill_id=fill.fill_id, account=fill.account, symbol=fill.symbol, side=fill.side,
        qty=fill.qty, price=fill.price, fee=fill.fee, liquidity=fill.liquidity,
        quote=quote or "?", notional=value, usd_notional=usd, ts=fill.ts,
        source=source, digest=fill_digest(fill),
    )


_INSERT_IDS = """
INSERT INTO fill_ids (fill_id, ts, digest)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::text[])
ON CONFLICT (fill_id) DO NOTHING
RETURNING fill_id
"""

_INSERT_FILLS = """
INSERT INTO fills (fill_id, account, symbol, side, qty, price, fee, liquidity, quote, notional, usd_notional,
                   ts, source)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[], $6::numeric[], $7::numeric[],
                     $8::text[], $9::text[], $10::numeric[], $11::numeric[], $12::timestamptz[], $13::text[])
"""


async def record_fills(pool: asyncpg.Pool, records: Sequence[FillRecord]) -> list[FillStatus]:
    """Insert new fills in one transaction; return each record's status, in order.

    ``recorded``: inserted now; ``duplicate``: the id was already recorded with
    the same content (earlier, or earlier in this batch); ``conflict``: the id
    was recorded with different content (the first version is kept).
    """
    first: dict[str, FillRecord] = {}
    for rec in records:
        first.setdefault(rec.fill_id, rec)
    batch = list(first.values())
    if not batch:
        return []
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(
            _INSERT_IDS, [r.fill_id for r in batch], [r.ts for r in batch], [r.digest for r in batch]
        )
        new = {row["fill_id"] for row in rows}
        fresh = [r for r in batch if r.fill_id in new]
        if fresh:
            await conn.execute(
                _INSERT_FILLS,
                [r.fill_id for r in fresh], [r.account for r in fresh], [r.symbol for r in fresh],
                [r.side for r in fresh], [r.qty for r in fresh], [r.price for r in fresh],
                [r.fee for r in fresh], [r.liquidity for r in fresh], [r.quote for r in fresh],
                [r.notional for r in fresh], [r.usd_notional for r in fresh], [r.ts for r in fresh],
                [r.source for r in fresh],
            )
        digests = {r.fill_id: r.digest for r in fresh}
        seen = [r.fill_id for r in batch if r.fill_id not in new]
        if seen:
            found = await conn.fetch("SELECT fill_id, digest FROM fill_ids WHERE fill_id = ANY($1::text[])", seen)
            digests.update({row["fill_id"]: row["digest"] for row in found})
    statuses: list[FillStatus] = []
    for rec in records:
        if rec.fill_id in new and first[rec.fill_id] is rec:
            statuses.append("recorded")
        else:
            statuses.append("duplicate" if digests.get(rec.fill_id) == rec.digest else "conflict")
    return statuses


_VOLUME = """
SELECT quote,
       coalesce(sum(usd_notional), 0) AS usd,
       coalesce(sum(notional) FILTER (WHERE usd_notional IS NULL), 0) AS unpriced,
       count(*) AS n
FROM fills
WHERE account = $1 AND ts > $2
GROUP BY quote
"""


async def query_volume(pool: asyncpg.Pool, account: str, window: timedelta) -> AccountVolume:
    """Sum an account's fills over ``window`` (one indexed query)."""
    now = datetime.now(timezone.utc)
    rows = await pool.fetch(_VOLUME, account, now - window)
    total = sum((row["usd"] for row in rows), Decimal(0))
    unpriced = {row["quote"]: row["unpriced"] for row in rows if row["unpriced"] > 0}
    count = sum(int(row["n"]) for row in rows)
    return AccountVolume(account=account, volume_usd=total, fill_count=count, unpriced=unpriced, as_of=now)


async def load_usd_rates(pool: asyncpg.Pool, rates: UsdRates) -> int:
    """Seed ``rates`` from the latest fill of every USD-quoted symbol; return how many were learned."""
    rows = await pool.fetch(
        "SELECT DISTINCT ON (symbol) symbol, quote, price FROM fills "
        "WHERE quote = ANY($1::text[]) ORDER BY symbol, ts DESC",
        sorted(USD_CODES),
    )
    for row in rows:
        base, quote = split_symbol(row["symbol"], row["quote"])
        rates.learn(base, quote, row["price"])
    return len(rows)


@dataclass
class _Entry:
    volume: AccountVolume
    expires: float


@dataclass
class _Load:
    future: asyncio.Future[AccountVolume]
    stale: bool = False


@dataclass
class VolumeCache:
    """Per-account volume cache: TTL, LRU bound, one database query per account at a time."""

    loader: Callable[[str], Awaitable[AccountVolume]]
    ttl: float = 2.0
    max_entries: int = 50_000
    clock: Callable[[], float] = time.monotonic
    _entries: OrderedDict[str, _Entry] = field(default_factory=OrderedDict)
    _inflight: dict[str, _Load] = field(default_factory=dict)
    hits: int = 0
    misses: int = 0

    async def get(self, account: str) -> AccountVolume:
        """The account's volume, from the cache when fresh, else loaded (coalescing concurrent misses)."""
        entry = self._entries.get(account)
        if entry is not None and entry.expires > self.clock():
            self._entries.move_to_end(account)
            self.hits += 1
            return entry.volume
        pending = self._inflight.get(account)
        if pending is not None:
            return await asyncio.shield(pending.future)
        self.misses += 1
        load = _Load(asyncio.get_running_loop().create_future())
        self._inflight[account] = load
        try:
            volume = await self.loader(account)
        except asyncio.CancelledError:
            load.future.cancel()
            raise
        except Exception as exc:
            load.future.set_exception(exc)
            load.future.exception()  # retrieved here: only waiters re-raise it
            raise
        finally:
            if self._inflight.get(account) is load:
                del self._inflight[account]
        load.future.set_result(volume)
        if not load.stale:  # a fill recorded meanwhile makes this result too old to keep
            self._entries[account] = _Entry(volume, self.clock() + self.ttl)
            self._entries.move_to_end(account)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return volume

    def invalidate(self, accounts: Iterable[str]) -> None:
        """Drop cached volumes (after this replica recorded fills for them), including loads in flight."""
        for account in accounts:
            self._entries.pop(account, None)
            load = self._inflight.pop(account, None)
            if load is not None:
                load.stale = True

    def clear(self) -> None:
        """Drop every cached volume."""
        self._entries.clear()
