"""Database access for the portfolio and strategy targets (one transaction per change).

Every change takes the next ``capital_version_seq`` value as the row's version
and sends a ``NOTIFY`` on :data:`CHANNEL` in the same transaction, delivered
to the other replicas only if it commits.
"""

from __future__ import annotations

import asyncpg

from sandbox.services.capital_allocator.cache import PortfolioState, StrategyState, notification
from sandbox.services.capital_allocator.models import PortfolioWrite, TargetWrite
from sandbox.services.kit.errors import ServiceError

CHANNEL = "capital_allocator_changed"

STRATEGY_COLUMNS = (
    "strategy, weight, min_capital, max_capital, min_weight, max_weight, active, allocated, reserved,"
    " allocation_id, version, created_at, updated_at, updated_by"
)
PORTFOLIO_COLUMNS = "nav, cash_buffer_pct, currency, precision, version, updated_by, updated_at"


def strategy_not_found(strategy: str) -> ServiceError:
    """The 404 for an unregistered strategy."""
    return ServiceError(404, "strategy_not_found", f"no strategy {strategy!r} is registered (PUT its target first)")


async def notify(conn: asyncpg.Connection, payload: str) -> None:
    """Queue a change notification (sent at commit)."""
    await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, payload)


async def notify_strategy(conn: asyncpg.Connection, state: StrategyState) -> None:
    """Queue a notification carrying the changed row, so other replicas need no query."""
    await notify(conn, notification("s", row=state.to_wire()))


def portfolio_of(row: asyncpg.Record | None) -> PortfolioState | None:
    """The portfolio from its row."""
    return None if row is None else PortfolioState(**dict(row))


async def load_all(pool: asyncpg.Pool) -> tuple[PortfolioState | None, list[StrategyState]]:
    """The portfolio and every strategy, from one consistent snapshot."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        prow = await conn.fetchrow(f"SELECT {PORTFOLIO_COLUMNS} FROM portfolio")
        rows = await conn.fetch(f"SELECT {STRATEGY_COLUMNS} FROM strategies ORDER BY strategy")
    return portfolio_of(prow), [StrategyState.from_row(r) for r in rows]


async def fingerprint(pool: asyncpg.Pool) -> tuple[int, int, int]:
    """(strategy count, sum of versions, portfolio version), as :meth:`CapitalCache.fingerprint`."""
    row = await pool.fetchrow(
        "SELECT (SELECT count(*) FROM strategies) AS n,"
        " (SELECT coalesce(sum(version), 0) FROM strategies) AS s,"
        " (SELECT coalesce(max(version), 0) FROM portfolio) AS p"
    )
    assert row is not None
    return int(row["n"]), int(row["s"]), int(row["p"])


async def put_portfolio(pool: asyncpg.Pool, body: PortfolioWrite, actor: str) -> PortfolioState:
    """Create or replace the portfolio (takes effect at the next allocation)."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO portfolio (id, nav, cash_buffer_pct, currency, precision, version, updated_by, updated_at)
                VALUES (true, $1, $2, $3, $4, nextval('capital_version_seq'), $5, now())
                ON CONFLICT (id) DO UPDATE SET nav = EXCLUDED.nav, cash_buffer_pct = EXCLUDED.cash_buffer_pct,
                    currency = EXCLUDED.currency, precision = EXCLUDED.precision, version = EXCLUDED.version,
                    updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
                RETURNING {PORTFOLIO_COLUMNS}""",
            body.nav, body.cash_buffer_pct, body.currency, body.precision, actor,
        )
        await notify(conn, notification("full"))
    state = portfolio_of(row)
    assert state is not None
    return state


async def put_target(
    pool: asyncpg.Pool, strategy: str, body: TargetWrite, actor: str
) -> tuple[StrategyState, bool]:
    """Register ``strategy`` or replace its target; returns the row and whether it was created."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO strategies (strategy, weight, min_capital, max_capital, min_weight, max_weight,
                    version, updated_by)
                VALUES ($1, $2, $3, $4, $5, $6, nextval('capital_version_seq'), $7)
                ON CONFLICT (strategy) DO UPDATE SET weight = EXCLUDED.weight, min_capital = EXCLUDED.min_capital,
                    max_capital = EXCLUDED.max_capital, min_weight = EXCLUDED.min_weight,
                    max_weight = EXCLUDED.max_weight, version = EXCLUDED.version,
                    updated_by = EXCLUDED.updated_by, updated_at = now()
                RETURNING {STRATEGY_COLUMNS}, (xmax = 0) AS created""",
            strategy, body.weight, body.min_capital, body.max_capital, body.min_weight, body.max_weight, actor,
        )
        assert row is not None
        state = StrategyState.from_row(row)
        await notify_strategy(conn, state)
    return state, bool(row["created"])


async def delete_strategy(pool: asyncpg.Pool, strategy: str) -> int:
    """Unregister an inactive strategy without open reservations; returns the delete's version."""
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT active FROM strategies WHERE strategy = $1 FOR UPDATE", strategy)
        if row is None:
            raise strategy_not_found(strategy)
        if row["active"]:
            raise ServiceError(409, "strategy_active", f"strategy {strategy!r} is active: release it first")
        open_count = await conn.fetchval(
            "SELECT count(*) FROM reservations WHERE strategy = $1 AND status = 'open'", strategy
        )
        if open_count:
            raise ServiceError(
                409, "open_reservations", f"strategy {strategy!r} has {open_count} open reservation(s)",
                detail={"open_reservations": open_count},
            )
        await conn.execute("DELETE FROM strategies WHERE strategy = $1", strategy)
        version = int(await conn.fetchval("SELECT nextval('capital_version_seq')"))
        await notify(conn, notification("d", s=strategy, v=version))
    return version

