"""Order ids carry the placing replica's tag, and the events of other replicas' orders are held, then settled by one
query: those the placing replica applied are done, the rest applied here (no servers)."""

from __future__ import annotations

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import pytest

from sandbox.services.oms.executions import ExecutionFeed
from sandbox.services.oms.ownership import applied_by_owner, owner_tag, replica_tag, tagged_order_id
from sandbox.services.oms.store import OrderRecord
from sandbox.services.oms.tracker import RecentOrders

D = Decimal
OWN = replica_tag("oms-0:8000")
OTHER = replica_tag("oms-1:8000")


def test_a_replica_tag_is_eight_hex_digits_of_its_name() -> None:
    assert OWN == replica_tag("oms-0:8000") != OTHER
    assert len(OWN) == 8 and int(OWN, 16) >= 0 and OWN == OWN.lower()


def test_order_ids_are_random_version_4_uuids_ending_in_the_tag() -> None:
    ids = {tagged_order_id(OWN) for _ in range(1000)}
    assert len(ids) == 1000
    for order_id in ids:
        parsed = uuid.UUID(order_id)
        assert str(parsed) == order_id and parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert owner_tag(order_id) == OWN


@pytest.mark.parametrize("value", [None, "", "manual-order-1", 42, "7C0A3F0E-0000-4000-8000-000000000001",
                                   "7c0a3f0e00004000800000000000000100ab", "not-a-uuid-but-thirty-six-characters"])
def test_ids_no_replica_made_carry_no_tag(value: Any) -> None:
    assert owner_tag(value) is None


@pytest.mark.parametrize(("kind", "item", "state", "filled", "applied"), [
    ("pending_new", {}, "pending_new", "0", True),
    ("new", {}, "pending_new", "0", False),
    ("new", {}, "new", "0", True),
    ("new", {}, "filled", "1", True),
    ("trade", {"cum_qty": "0.5"}, "new", "0", False),
    ("trade", {"cum_qty": "0.5"}, "partially_filled", "0.5", True),
    ("trade", {"cum_qty": "1"}, "partially_filled", "0.5", False),
    ("trade", {"cum_qty": "x"}, "filled", "1", False),
    ("trade", {"cum_qty": "NaN"}, "filled", "1", False),
    ("trade", {}, "filled", "1", False),
    ("canceled", {}, "canceled", "0", False),
    ("filled", {"cum_qty": "1"}, "filled", "1", True),
    ("canceled", {"cum_qty": "0"}, "new", "0", False),
    ("canceled", {"cum_qty": "0"}, "canceled", "0", True),
    ("expired", {"cum_qty": "0.2"}, "expired", "0.1", False),
    ("amended", {}, "new", "0", False),
])
def test_whether_the_placing_replica_applied_an_event(kind: str, item: dict[str, Any], state: str, filled: str,
                                                      applied: bool) -> None:
    assert applied_by_owner(kind, item, state, D(filled)) is applied


class FakePool:
    def __init__(self, rows: dict[str, tuple[str, Decimal]]) -> None:
        self.rows = rows
        self.queries: list[list[str]] = []
        self.fail = False

    async def fetch(self, query: str, ids: list[str]) -> list[tuple[str, str, Decimal]]:
        self.queries.append(sorted(ids))
        if self.fail:
            raise ConnectionError("database down")
        return [(i, *self.rows[i]) for i in ids if i in self.rows]


class FakeTracker:
    def __init__(self, pool: FakePool) -> None:
        self.pool = pool
        self.recent = RecentOrders(size=10)
        self.submitting: dict[str, str | None] = {}


class Counter:
    def __init__(self) -> None:
        self.counts: dict[tuple[str, str], int] = {}

    def labels(self, kind: str, outcome: str) -> Counter:
        self._key = (kind, outcome)
        return self

    def inc(self) -> None:
        self.counts[self._key] = self.counts.get(self._key, 0) + 1


def feed(pool: FakePool, grace: float = 3.0) -> tuple[ExecutionFeed, list[dict[str, Any]], Counter]:
    counter = Counter()
    f = ExecutionFeed(FakeTracker(pool), ws_url="ws://127.0.0.1:1", poll_interval_s=1, resolve=None,  # type: ignore[arg-type]
                      counter=counter, own_tag=OWN, foreign_grace_s=grace)
    chained: list[dict[str, Any]] = []
    f._chain = chained.append  # type: ignore[method-assign]
    return f, chained, counter


def order(order_id: str) -> OrderRecord:
    return OrderRecord(id=order_id, account="a", client_order_id="c", symbol="XBT/USD", pair="XXBTZUSD", side="buy",
                       type="limit", qty=D("1"), created_by="t")


def event(kind: str, cl_ord_id: str, **kw: Any) -> dict[str, Any]:
    return {"exec_type": kind, "order_id": "OTX", "cl_ord_id": cl_ord_id, **kw}


def test_events_of_this_replicas_and_untagged_orders_are_applied_at_once_others_held() -> None:
    f, chained, _ = feed(FakePool({}))
    mine, theirs = tagged_order_id(OWN), tagged_order_id(OTHER)
    f._enqueue(event("trade", mine, cum_qty="1"))
    f._enqueue(event("trade", "manual-1", cum_qty="1"))
    f._enqueue(event("trade", theirs, cum_qty="1"))
    assert [e["cl_ord_id"] for e in chained] == [mine, "manual-1"]
    assert f.held == 1


def test_a_replica_applies_at_once_the_events_of_other_replicas_orders_it_wrote_lately() -> None:
    f, chained, _ = feed(FakePool({}))
    theirs = tagged_order_id(OTHER)
    f.tracker.recent.put(order(theirs))  # e.g. it cancelled the order
    f._enqueue(event("canceled", theirs, cum_qty="0"))
    assert len(chained) == 1 and f.held == 0


def test_while_events_of_an_order_are_held_its_later_ones_wait_behind_them() -> None:
    theirs = tagged_order_id(OTHER)
    f, chained, _ = feed(FakePool({theirs: ("new", D("0"))}))
    first = event("trade", theirs, cum_qty="0.5")
    f._enqueue(first)
    f.tracker.recent.put(order(theirs))  # written here meanwhile (the placing replica is gone)
    later = event("canceled", theirs, cum_qty="0.5")
    f._enqueue(later)
    assert not chained and f.held == 2, "the cancel must not overtake the held trade"
    asyncio.run(f.release_held(now=f._held[-1][0] + 3.1))
    assert chained == [first, later] and f.held == 0
    f._enqueue(event("canceled", theirs, cum_qty="0.5"))
    assert len(chained) == 3, "nothing held any more: written here lately, applied at once"


def test_without_a_tag_every_event_is_applied_at_once() -> None:
    f, chained, _ = feed(FakePool({}))
    f.own_tag = None
    f._enqueue(event("trade", tagged_order_id(OTHER), cum_qty="1"))
    assert len(chained) == 1


def test_held_events_are_settled_after_the_grace_period_with_one_query() -> None:
    applied, lagging, unknown = tagged_order_id(OTHER), tagged_order_id(OTHER), tagged_order_id(OTHER)
    pool = FakePool({applied: ("filled", D("1")), lagging: ("new", D("0"))})
    f, chained, counter = feed(pool)
    items = [event("new", applied), event("trade", applied, cum_qty="1"), event("trade", lagging, cum_qty="0.4"),
             event("trade", unknown, cum_qty="1")]
    for item in items:
        f._enqueue(item)
    start = f._held[0][0]
    assert asyncio.run(f.release_held(now=start + 2.9)) == 0 and f.held == 4 and not pool.queries
    assert asyncio.run(f.release_held(now=start + 3.1)) == 4
    assert pool.queries == [sorted({applied, lagging, unknown})], "one query for every due event"
    assert chained == items[2:], "applied here: what the placing replica has not applied, and unknown orders"
    assert counter.counts == {("new", "owner"): 1, ("trade", "owner"): 1} and f.held == 0


def test_many_held_events_are_settled_a_batch_per_query(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.services.oms import executions

    monkeypatch.setattr(executions, "RELEASE_BATCH", 2)
    pool = FakePool({})
    f, chained, _ = feed(pool, grace=0.0)
    for _ in range(5):
        f._enqueue(event("trade", tagged_order_id(OTHER), cum_qty="1"))
    assert asyncio.run(f.release_held()) == 5 and len(chained) == 5
    assert [len(q) for q in pool.queries] == [2, 2, 1] and not f._held_orders


def test_beyond_the_most_held_the_oldest_are_dropped_and_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.services.oms import executions

    monkeypatch.setattr(executions, "MAX_HELD", 2)
    f, _, counter = feed(FakePool({}))
    ids = [tagged_order_id(OTHER) for _ in range(3)]
    for order_id in ids:
        f._enqueue(event("trade", order_id, cum_qty="1"))
    assert [i["cl_ord_id"] for _, i in f._held] == ids[1:] and set(f._held_orders) == set(ids[1:])
    assert counter.counts == {("trade", "dropped"): 1}


def test_held_events_stay_held_in_order_when_the_database_is_down() -> None:
    pool = FakePool({})
    f, chained, _ = feed(pool, grace=0.0)
    items = [event("trade", tagged_order_id(OTHER), cum_qty="1") for _ in range(3)]
    for item in items:
        f._enqueue(item)
    pool.fail = True
    with pytest.raises(ConnectionError):
        asyncio.run(f.release_held())
    assert [i for _, i in f._held] == items and not chained
    pool.fail = False
    assert asyncio.run(f.release_held()) == 3 and chained == items
