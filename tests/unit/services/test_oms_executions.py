"""Which execution events the OMS can skip without reading the database (no servers)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sandbox.services.oms.executions import ExecutionFeed
from sandbox.services.oms.store import OrderRecord
from sandbox.services.oms.tracker import RecentOrders

OID = "7c0a3f0e-0000-4000-8000-000000000001"


class FakeTracker:
    def __init__(self) -> None:
        self.recent = RecentOrders(size=3)
        self.submitting: dict[str, str | None] = {}


def feed() -> tuple[ExecutionFeed, FakeTracker]:
    tracker = FakeTracker()
    return ExecutionFeed(tracker, ws_url="ws://127.0.0.1:1", poll_interval_s=1, resolve=None), tracker  # type: ignore[arg-type]


def order(**kw: Any) -> OrderRecord:
    base: dict[str, Any] = dict(id=OID, account="a", client_order_id="c", symbol="XBT/USD", pair="XXBTZUSD",
                                side="buy", type="limit", qty=Decimal("1"), created_by="t")
    base.update(kw)
    return OrderRecord(**base)


def event(kind: str, **kw: Any) -> dict[str, Any]:
    return {"exec_type": kind, "order_id": "OTX", "cl_ord_id": OID, **kw}


def test_acknowledgements_of_an_order_being_placed_are_left_to_the_addorder_answer() -> None:
    f, tracker = feed()
    tracker.submitting[OID] = None
    assert f._skip(event("new"))
    assert tracker.submitting[OID] == "OTX", "the txid is kept in case the AddOrder answer is lost"
    assert not f._skip(event("trade", cum_qty=Decimal("1"))), "fills are always applied"


def test_events_that_change_nothing_known_are_skipped() -> None:
    f, tracker = feed()
    assert not f._skip(event("new")), "unknown order: look it up"
    tracker.recent.put(order(state="pending_new"))
    assert not f._skip(event("new")), "not acknowledged yet: apply"
    tracker.recent.put(order(state="new", txid="OTX"))
    assert f._skip(event("new"))
    assert not f._skip(event("filled", cum_qty=Decimal("1"))), "fills missing: catch up"
    tracker.recent.put(order(state="filled", txid="OTX", filled_qty=Decimal("1")))
    assert f._skip(event("filled", cum_qty=Decimal("1")))
    assert not f._skip(event("canceled")), "a cancel always goes to the database (conditional)"


def test_the_recent_orders_cache_is_bounded() -> None:
    cache = RecentOrders(size=2)
    for i in range(3):
        cache.put(order(id=f"id-{i}"))
    assert cache.get("id-0") is None and cache.get("id-2") is not None and cache.get(None) is None
