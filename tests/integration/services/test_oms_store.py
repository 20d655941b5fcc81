"""The OMS's order store against PostgreSQL: marking events published (one statement for both kinds)."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import asyncpg

from sandbox.services.kit.db import apply_migrations
from sandbox.services.oms import states, store
from sandbox.services.oms.migrations import MIGRATIONS
from sandbox.services.oms.store import FillRecord, OrderRecord


def _order(n: int) -> OrderRecord:
    return OrderRecord(id=store.new_order_id(), account="acct", client_order_id=f"c-{n}", symbol="XBT/USD",
                       pair="XXBTZUSD", side="buy", type="limit", qty=Decimal("1"), price=Decimal("30000"),
                       created_by="test")


def _fill(order: OrderRecord, n: int) -> FillRecord:
    return FillRecord(fill_id=f"T-{n}-{secrets.token_hex(3)}", order_id=order.id, account=order.account,
                      strategy=None, symbol=order.symbol, side=order.side, qty=Decimal("0.25"), price=Decimal("30000"),
                      cost=Decimal("7500"), fee=Decimal("1"), fee_currency="USD", fee_asset="ZUSD",
                      liquidity="taker", ts=datetime(2026, 12, 4, 17, n, tzinfo=timezone.utc), source="ws")


async def _migrated_pool(postgres: Any) -> asyncpg.Pool:
    dbname = f"oms_store_{secrets.token_hex(3)}"
    postgres.create_database(dbname)
    pool = await asyncpg.create_pool(postgres.dsn(dbname), min_size=1, max_size=2)
    await apply_migrations(pool, MIGRATIONS)
    return pool


def test_mark_published_marks_exactly_the_given_fills_and_transitions(postgres: Any) -> None:
    async def main() -> None:
        pool = await _migrated_pool(postgres)
        try:
            written = []
            for n in range(3):
                inserted = await store.insert_order(pool, _order(n), [(None, states.PENDING_NEW, "received", None)])
                assert inserted is not None
                order, steps = inserted
                fill = _fill(order, n)
                outcome = await store.record_fill(pool, fill, base="XXBT", quote="ZUSD")
                assert outcome is not None and outcome.transition is not None
                written.append((order, steps[0].id, outcome.transition.id, fill.fill_id))

            # Both kinds in one call; the third order's events stay unpublished.
            await store.mark_published(pool, fill_ids=[w[3] for w in written[:2]],
                                       transition_ids=[t for w in written[:2] for t in (w[1], w[2])])
            # One kind alone (the other list empty or absent) works too.
            await store.mark_published(pool, fill_ids=[], transition_ids=[written[2][1]])
            await store.mark_published(pool)  # nothing to mark: no statement, no error

            fills = {r["fill_id"]: r["published_at"]
                     for r in await pool.fetch("SELECT fill_id, published_at FROM fills")}
            steps = {r["id"]: r["published_at"]
                     for r in await pool.fetch("SELECT id, published_at FROM order_transitions")}
            assert [fills[w[3]] is not None for w in written] == [True, True, False]
            assert [steps[w[1]] is not None for w in written] == [True, True, True]
            assert [steps[w[2]] is not None for w in written] == [True, True, False]

            left_fills = await store.unpublished_fills(pool, older_than_s=0.0)
            left_steps = await store.unpublished_transitions(pool, older_than_s=0.0)
            assert [f.fill_id for f, _ in left_fills] == [written[2][3]]
            assert [t.id for t in left_steps] == [written[2][2]]
        finally:
            await pool.close()

    asyncio.run(main())


def test_a_row_read_back_is_the_record_written(postgres: Any) -> None:
    """``from_row`` fills every field from the row itself (the dataclass ``__init__`` is skipped)."""
    async def main() -> None:
        pool = await _migrated_pool(postgres)
        try:
            written = _order(7)
            written.reasons = [{"code": "x", "n": 1}]
            inserted = await store.insert_order(pool, written, [(None, states.PENDING_NEW, "received", None)])
            assert inserted is not None
            order = inserted[0]
            assert sorted(order.__dict__) == sorted(f.name for f in dataclasses.fields(OrderRecord))
            assert {k: v for k, v in order.__dict__.items() if k not in ("created_at", "updated_at")} == {
                k: v for k, v in written.__dict__.items() if k not in ("created_at", "updated_at")}
            assert order.created_at is not None and order.remaining_qty == Decimal("1")
            assert await store.get_order(pool, order.id) == order
        finally:
            await pool.close()

    asyncio.run(main())
