"""Capital reservations of open orders (for the OMS), idempotent on the order id.

Each operation is one call of a PL/pgSQL function (migration 2), one round
trip: it locks the strategy row, so the availability check and the
``reserved`` update are atomic across replicas; ``strategies.reserved``
always equals the sum of ``amount - consumed`` (at least 0) over the
strategy's open reservations.

* create: ``amount <= available`` or 409; the same order id with the same
  strategy, amount and account replays (200, nothing changes); with anything
  else it is a 409 ``reservation_conflict``.
* release: frees what remains; releasing a closed reservation is a no-op.
* consume: ``consumed_total`` is the order's cumulative filled notional, so a
  retry or a stale (lower) total changes nothing; ``final`` closes the
  reservation and frees the rest. A fill reported after a release is recorded
  on the reservation without touching the strategy's capital.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

import asyncpg

from sandbox.services.capital_allocator.cache import StrategyState
from sandbox.services.capital_allocator.models import ConsumeRequest, ReservationCreate, ReservationPublic
from sandbox.services.capital_allocator.repository import strategy_not_found
from sandbox.services.kit.errors import ServiceError

ZERO = Decimal(0)
RESERVATION_COLUMNS = "order_id, strategy, account, amount, consumed, status, created_by, created_at, updated_at, closed_at"


@dataclass(frozen=True)
class Outcome:
    """A reservation after a call, the strategy's row, whether nothing changed, whether it was created."""

    reservation: ReservationPublic
    strategy: StrategyState
    replayed: bool
    created: bool = False


def remaining(amount: Decimal, consumed: Decimal, status: str) -> Decimal:
    """What an open reservation still holds (0 once closed)."""
    return max(ZERO, amount - consumed) if status == "open" else ZERO


def public(row: asyncpg.Record) -> ReservationPublic:
    """A reservations row as served."""
    return ReservationPublic(
        **{k: row[k] for k in ("order_id", "strategy", "account", "amount", "consumed", "status", "created_by",
                               "created_at", "updated_at", "closed_at")},
        remaining=remaining(row["amount"], row["consumed"], row["status"]),
    )


def reservation_not_found(strategy: str, order_id: str) -> ServiceError:
    """The 404 for an unknown reservation."""
    return ServiceError(404, "reservation_not_found", f"no reservation for order {order_id!r} on strategy {strategy!r}")


def _failure(outcome: str, strategy: str, order_id: str, row: asyncpg.Record) -> ServiceError | None:
    """The error an outcome code of the database functions stands for (None: success or replay)."""
    if outcome == "strategy_not_found":
        return strategy_not_found(strategy)
    if outcome == "reservation_not_found":
        return reservation_not_found(strategy, order_id)
    if outcome == "strategy_inactive":
        return ServiceError(409, "strategy_inactive", f"strategy {strategy!r} is not active (no capital allocated)")
    if outcome == "reservation_conflict":
        existing = row["r"]
        return ServiceError(
            409, "reservation_conflict", f"order {order_id!r} already holds a different reservation",
            detail={"strategy": existing["strategy"], "amount": format(existing["amount"], "f"),
                    "account": existing["account"]},
        )
    if outcome == "insufficient_capital":
        available = format(row["s"]["allocated"] - row["s"]["reserved"], "f")
        return ServiceError(
            409, "insufficient_capital",
            f"strategy {strategy!r} has {available} available, {row['requested']} requested",
            detail={"available": available, "requested": row["requested"]},
        )
    return None


async def _call(pool: asyncpg.Pool, sql: str, strategy: str, order_id: str, *args: object) -> Outcome:
    row = await pool.fetchrow(sql, order_id, strategy, *args)
    assert row is not None
    outcome = row["outcome"]
    error = _failure(outcome, strategy, order_id, row)
    if error is not None:
        raise error
    return Outcome(public(row["r"]), StrategyState.from_row(row["s"]), replayed=outcome == "replayed",
                   created=outcome == "created")


_RESERVE = "SELECT outcome, r, s, $4::numeric::text AS requested FROM capital_reserve($1, $2, $3, $4, $5)"
_RELEASE = "SELECT outcome, r, s FROM capital_release($1, $2)"
_CONSUME = "SELECT outcome, r, s FROM capital_consume($1, $2, $3, $4)"


async def reserve(pool: asyncpg.Pool, strategy: str, body: ReservationCreate, actor: str) -> Outcome:
    """Reserve ``body.amount`` of ``strategy``'s available capital for an order (idempotent on the order id)."""
    for _ in range(2):
        try:
            return await _call(pool, _RESERVE, strategy, body.order_id, body.account, body.amount, actor)
        except asyncpg.UniqueViolationError:
            continue  # the same order id was reserved concurrently on another strategy: look again
    raise ServiceError(409, "retry", "concurrent reservations for this order id, retry", headers={"Retry-After": "1"})


async def release(pool: asyncpg.Pool, strategy: str, order_id: str) -> Outcome:
    """Free what an open reservation still holds (a closed one is returned unchanged)."""
    return await _call(pool, _RELEASE, strategy, order_id)


async def consume(pool: asyncpg.Pool, strategy: str, order_id: str, body: ConsumeRequest) -> Outcome:
    """Record the order's cumulative fills; ``final`` closes the reservation (see the module docstring)."""
    return await _call(pool, _CONSUME, strategy, order_id, body.consumed_total, body.final)


async def get(pool: asyncpg.Pool, strategy: str, order_id: str) -> ReservationPublic:
    """One reservation (404 when unknown)."""
    row = await pool.fetchrow(
        f"SELECT {RESERVATION_COLUMNS} FROM reservations WHERE order_id = $1 AND strategy = $2", order_id, strategy
    )
    if row is None:
        raise reservation_not_found(strategy, order_id)
    return public(row)


async def list_for(pool: asyncpg.Pool, strategy: str, status: str | None, limit: int) -> list[ReservationPublic]:
    """A strategy's reservations, newest first, optionally by status."""
    rows = await pool.fetch(
        f"""SELECT {RESERVATION_COLUMNS} FROM reservations WHERE strategy = $1 AND ($2::text IS NULL OR status = $2)
            ORDER BY created_at DESC, order_id LIMIT $3""",
        strategy, status, limit,
    )
    return [public(r) for r in rows]
