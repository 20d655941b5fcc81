"""Allocation runs: ``POST /v1/rebalance``, a strategy's ``allocate`` and ``release``, and their history.

A run reads the portfolio and every strategy with row locks (so runs,
target changes and reservations on the same rows serialise), computes the
allocations with :func:`~.algorithm.allocate`, writes them, appends the run to
``allocation_runs`` (who, when, why, inputs, outputs) and notifies the other
replicas, all in one transaction: a run is stored completely or not at all.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import asyncpg

from sandbox.services.capital_allocator.algorithm import (
    AllocationError,
    Inputs,
    Result,
    Target,
    allocate,
    quantum,
)
from sandbox.services.capital_allocator.cache import PortfolioState, StrategyState, notification
from sandbox.services.capital_allocator.models import (
    AllocationInputs,
    AllocationLinePublic,
    AllocationOutputs,
    AllocationRunPublic,
    TargetInput,
)
from sandbox.services.capital_allocator.repository import (
    PORTFOLIO_COLUMNS,
    STRATEGY_COLUMNS,
    notify,
    portfolio_of,
    strategy_not_found,
)
from sandbox.services.kit.auth import Principal
from sandbox.services.kit.errors import ServiceError

ZERO = Decimal(0)
RUN_COLUMNS = "id, at, actor, actor_kind, trigger, strategy, reason, rebalanced, note, inputs, outputs"


def nav_not_set() -> ServiceError:
    """The 409 when no portfolio NAV has been set yet."""
    return ServiceError(409, "nav_not_set", "no portfolio NAV is set: PUT /v1/portfolio first")


def _target(state: StrategyState) -> Target:
    return Target(
        strategy=state.strategy, weight=state.weight, min_capital=state.min_capital, max_capital=state.max_capital,
        min_weight=state.min_weight, max_weight=state.max_weight,
    )


def _inputs(portfolio: PortfolioState, active: list[StrategyState]) -> AllocationInputs:
    return AllocationInputs(
        nav=portfolio.nav, cash_buffer_pct=portfolio.cash_buffer_pct, currency=portfolio.currency,
        precision=portfolio.precision,
        targets=[
            TargetInput(strategy=s.strategy, weight=s.weight, min_capital=s.min_capital, max_capital=s.max_capital,
                        min_weight=s.min_weight, max_weight=s.max_weight)
            for s in active
        ],
    )


def _outputs(result: Result, previous: dict[str, Decimal], released: list[str]) -> AllocationOutputs:
    return AllocationOutputs(
        buffer=result.buffer, allocatable=result.allocatable, allocated=result.allocated,
        unallocated=result.unallocated, iterations=result.iterations, released=released,
        lines=[
            AllocationLinePublic(
                strategy=line.strategy, weight=line.weight, normalised_weight=line.normalised_weight,
                min_capital=line.min_capital, max_capital=line.max_capital, allocated=line.allocated,
                previous=previous[line.strategy], binding=line.binding, share=line.share,
            )
            for line in result.lines
        ],
    )


def _unbalanced_outputs(portfolio: PortfolioState, new: dict[str, Decimal], released: list[str]) -> AllocationOutputs:
    """Outputs of a release whose rebalance was infeasible: only the released strategy changed."""
    allocatable = portfolio.allocatable
    allocated = sum(new.values(), ZERO)
    return AllocationOutputs(
        buffer=portfolio.nav - allocatable, allocatable=allocatable, allocated=allocated,
        unallocated=allocatable - allocated, iterations=0, lines=[], released=released,
    )


def run_from_row(row: asyncpg.Record) -> AllocationRunPublic:
    """An ``allocation_runs`` row as served."""
    return AllocationRunPublic(
        id=row["id"], at=row["at"], actor=row["actor"], actor_kind=row["actor_kind"], trigger=row["trigger"],
        strategy=row["strategy"], reason=row["reason"], rebalanced=row["rebalanced"], note=row["note"],
        inputs=AllocationInputs.model_validate(json.loads(row["inputs"])),
        outputs=AllocationOutputs.model_validate(json.loads(row["outputs"])),
    )


async def run_allocation(
    pool: asyncpg.Pool,
    *,
    trigger: str,
    actor: Principal,
    strategy: str | None = None,
    reason: str | None = None,
    dry_run: bool = False,
) -> AllocationRunPublic:
    """Compute and (unless ``dry_run``) store one allocation run.

    ``trigger`` is ``rebalance`` (the active set as is), ``allocate`` (``strategy``
    becomes active first) or ``release`` (``strategy`` becomes inactive with no
    capital; if the others cannot be rebalanced they keep their allocations).
    Infeasible targets raise a 409 and change nothing.
    """
    async with pool.acquire() as conn, conn.transaction():
        portfolio = portfolio_of(await conn.fetchrow(f"SELECT {PORTFOLIO_COLUMNS} FROM portfolio FOR UPDATE"))
        rows = await conn.fetch(f"SELECT {STRATEGY_COLUMNS} FROM strategies ORDER BY strategy FOR UPDATE")
        states = {r["strategy"]: StrategyState.from_row(r) for r in rows}
        if strategy is not None and strategy not in states:
            raise strategy_not_found(strategy)
        if portfolio is None:
            raise nav_not_set()
        active_ids = {s for s, st in states.items() if st.active}
        if trigger == "allocate":
            active_ids.add(strategy)  # type: ignore[arg-type]
        elif trigger == "release":
            active_ids.discard(strategy)  # type: ignore[arg-type]
        active = [states[s] for s in sorted(active_ids)]
        previous = {s: st.allocated for s, st in states.items()}
        released = sorted(s for s, st in states.items() if s not in active_ids and (st.active or st.allocated))
        inputs = _inputs(portfolio, active)
        zero = ZERO.quantize(quantum(portfolio.precision))
        rebalanced, note = True, None
        try:
            result = allocate(Inputs(portfolio.nav, portfolio.cash_buffer_pct, portfolio.precision,
                                     tuple(_target(s) for s in active)))
        except AllocationError as exc:
            if trigger != "release":
                raise ServiceError(409, exc.code, exc.message, detail=exc.detail) from None
            rebalanced, note = False, f"{exc.code}: {exc.message}; the other strategies keep their allocations"
            new = {s: (zero if s == strategy else previous[s]) for s in states}
            outputs = _unbalanced_outputs(portfolio, {s: new[s] for s in active_ids}, released)
        else:
            lines = result.by_strategy()
            new = {s: (lines[s].allocated if s in lines else zero) for s in states}
            outputs = _outputs(result, previous, released)
        common: dict[str, Any] = {
            "actor": actor.subject, "actor_kind": actor.kind, "trigger": trigger, "strategy": strategy,
            "reason": reason, "rebalanced": rebalanced, "note": note, "inputs": inputs, "outputs": outputs,
        }
        if dry_run:
            return AllocationRunPublic(id=None, at=await conn.fetchval("SELECT now()"), dry_run=True, **common)
        row = await conn.fetchrow(
            f"""INSERT INTO allocation_runs (actor, actor_kind, trigger, strategy, reason, rebalanced, note,
                    strategies, inputs, outputs)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb) RETURNING {RUN_COLUMNS}""",
            actor.subject, actor.kind, trigger, strategy, reason, rebalanced, note,
            sorted(active_ids | set(released) | ({strategy} if strategy else set())),
            inputs.model_dump_json(), outputs.model_dump_json(),
        )
        run_id = row["id"]
        touched = [s for s in states if s in released or (rebalanced and s in active_ids)]
        if touched:
            await conn.execute(
                """UPDATE strategies AS t SET allocated = u.allocated, active = u.active, allocation_id = $4,
                       version = nextval('capital_version_seq'), updated_at = now(), updated_by = $5
                   FROM unnest($1::text[], $2::numeric[], $3::boolean[]) AS u(strategy, allocated, active)
                   WHERE t.strategy = u.strategy""",
                touched, [new[s] for s in touched], [s in active_ids for s in touched], run_id, actor.subject,
            )
        await notify(conn, notification("full"))
    return run_from_row(row)


async def history(
    pool: asyncpg.Pool, *, limit: int, before: int | None, strategy: str | None, trigger: str | None
) -> list[AllocationRunPublic]:
    """Allocation runs newest first (``before``: only ids below it), optionally for one strategy / trigger."""
    rows = await pool.fetch(
        f"""SELECT {RUN_COLUMNS} FROM allocation_runs
            WHERE id < $2 AND ($3::text IS NULL OR strategies @> ARRAY[$3::text]) AND ($4::text IS NULL OR trigger = $4)
            ORDER BY id DESC LIMIT $1""",
        limit, before if before is not None else 2**62, strategy, trigger,
    )
    return [run_from_row(r) for r in rows]


async def get_run(pool: asyncpg.Pool, run_id: int) -> AllocationRunPublic:
    """One run by id (404 when unknown)."""
    row = await pool.fetchrow(f"SELECT {RUN_COLUMNS} FROM allocation_runs WHERE id = $1", run_id)
    if row is None:
        raise ServiceError(404, "allocation_not_found", f"no allocation run {run_id}")
    return run_from_row(row)
