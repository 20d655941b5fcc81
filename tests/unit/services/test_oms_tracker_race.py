"""``OrderTracker.move`` after losing a race: start again from what this process wrote, else re-read (no servers)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from sandbox.services.oms import states, store
from sandbox.services.oms.store import OrderRecord
from sandbox.services.oms.tracker import OrderTracker

OID = "7c0a3f0e-0000-4000-8000-000000000002"
T0 = datetime(2026, 12, 4, 17, 0, tzinfo=timezone.utc)


def order(**kw: Any) -> OrderRecord:
    base: dict[str, Any] = dict(id=OID, account="a", client_order_id="c", symbol="XBT/USD", pair="XXBTZUSD",
                                side="buy", type="limit", qty=Decimal("1"), price=Decimal("1"), created_by="t",
                                updated_at=T0)
    base.update(kw)
    return OrderRecord(**base)


class Calls:
    def __init__(self, db_order: OrderRecord) -> None:
        self.db_order = db_order
        self.reads = 0
        self.transitions = 0
        self.txids: list[str] = []


@pytest.fixture
def fake_store(monkeypatch: pytest.MonkeyPatch) -> Calls:
    calls = Calls(order(state=states.FILLED, txid="OTX", filled_qty=Decimal("1"), updated_at=T0 + timedelta(seconds=1)))

    async def transition(_db: Any, current: OrderRecord, *_a: Any, **_k: Any) -> None:
        calls.transitions += 1
        return None  # the row changed meanwhile: the conditional update applies to nothing

    async def get_order(_db: Any, _oid: str) -> OrderRecord:
        calls.reads += 1
        return calls.db_order

    async def set_txid(_db: Any, _oid: str, txid: str) -> None:
        calls.txids.append(txid)

    monkeypatch.setattr(store, "transition", transition)
    monkeypatch.setattr(store, "get_order", get_order)
    monkeypatch.setattr(store, "set_txid", set_txid)
    return calls


def tracker() -> OrderTracker:
    return OrderTracker(pool=None, catalog=lambda: None, kraken=lambda: None, events=None,  # type: ignore[arg-type]
                        capital=None, adopt_account="adopted", kill_switch_active=lambda _a: False)  # type: ignore[arg-type]


def test_a_lost_acknowledgement_race_starts_from_the_fill_this_process_wrote(fake_store: Calls) -> None:
    t = tracker()
    placed = order(state=states.PENDING_NEW)
    t.recent.put(order(state=states.FILLED, txid="OTX", filled_qty=Decimal("1"), updated_at=T0 + timedelta(seconds=1)))
    after = asyncio.run(t.move(placed, states.NEW, "venue_acknowledged", txid="OTX"))
    assert (after.state, after.txid) == (states.FILLED, "OTX"), "a late acknowledgement of a filled order"
    assert (fake_store.transitions, fake_store.reads, fake_store.txids) == (0, 0, []), \
        "no conditional write bound to fail, no re-read of the row"


def test_a_fill_written_during_the_move_is_where_the_retry_starts(fake_store: Calls,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    t = tracker()
    placed = order(state=states.PENDING_NEW)

    async def transition(_db: Any, current: OrderRecord, *_a: Any, **_k: Any) -> None:
        fake_store.transitions += 1
        t.recent.put(fake_store.db_order)  # the feed recorded the fill while this write was in flight
        return None

    monkeypatch.setattr(store, "transition", transition)
    after = asyncio.run(t.move(placed, states.NEW, "venue_acknowledged", txid="OTX"))
    assert (after.state, after.txid) == (states.FILLED, "OTX")
    assert (fake_store.transitions, fake_store.reads, fake_store.txids) == (1, 0, [])


def test_without_a_newer_written_version_the_row_is_read_again(fake_store: Calls) -> None:
    t = tracker()
    placed = order(state=states.PENDING_NEW)
    t.recent.put(placed)  # the cache holds only what the move started from
    after = asyncio.run(t.move(placed, states.NEW, "venue_acknowledged", txid="OTX"))
    assert after.state == states.FILLED
    assert (fake_store.transitions, fake_store.reads) == (1, 1)


def test_an_older_cached_version_is_not_used(fake_store: Calls) -> None:
    t = tracker()
    t.recent.put(order(state=states.PENDING_NEW, updated_at=T0 - timedelta(seconds=5)))
    current = order(state=states.NEW, txid="OTX")
    after = asyncio.run(t.move(current, states.CANCELED, "venue_canceled"))
    assert after.state == states.FILLED, "the database's version, not the stale cache"
    assert fake_store.reads == 1


class Published:
    """The tracker's event publisher, recording what it was given."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def fill(self, fill: Any, _client_order_id: str) -> None:
        self.sent.append(("fill", fill.fill_id))

    def order(self, order: OrderRecord, step: Any) -> None:
        self.sent.append(("order", order.state))


def _fill_and_instrument() -> tuple[Any, Any]:
    """A 1 XBT/USD buy fill of order ``OID`` and its instrument."""
    from sandbox.services.oms.instruments import Instrument
    from sandbox.services.oms.store import FillRecord

    fill = FillRecord(fill_id="T1", order_id=OID, account="a", strategy=None, symbol="XBT/USD", side="buy",
                      qty=Decimal("1"), price=Decimal("1"), cost=Decimal("1"), fee=Decimal("0"), fee_currency="USD",
                      fee_asset="ZUSD", liquidity="taker", ts=T0, source="ws")
    inst = Instrument(key="XXBTZUSD", altname="XBTUSD", wsname="XBT/USD", base="XXBT", quote="ZUSD", pair_decimals=1,
                      lot_decimals=8, cost_decimals=5, ordermin=Decimal("0.0001"), tick_size=Decimal("0.1"))
    return fill, inst


def test_an_acknowledgement_waits_for_the_fill_being_written_instead_of_racing_it(
        fake_store: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    """The trade event came before the AddOrder answer: the acknowledgement sends no write bound to fail."""
    from sandbox.services.oms.store import FillOutcome, FillRecord

    events = Published()
    t = tracker()
    t.events = events  # type: ignore[assignment]
    placed = order(state=states.PENDING_NEW)
    filled = fake_store.db_order
    fill, inst = _fill_and_instrument()
    release = asyncio.Event()
    order_seen: list[str] = []

    async def record_fill(_db: Any, _fill: FillRecord, **_k: Any) -> FillOutcome:
        await release.wait()  # the statement is in flight
        return FillOutcome(filled, fill, None)

    monkeypatch.setattr(store, "record_fill", record_fill)

    async def main() -> OrderRecord:
        writing = asyncio.create_task(t.record_fill(fill, inst, txid="OTX"))
        await asyncio.sleep(0)  # the feed's write has started
        ack = asyncio.create_task(t.move(placed, states.NEW, "venue_acknowledged", txid="OTX"))
        await asyncio.sleep(0.01)
        order_seen.append("ack waiting" if not ack.done() else "ack done")
        release.set()
        await writing
        return await ack

    after = asyncio.run(main())
    assert order_seen == ["ack waiting"], "the acknowledgement waits while the fill is being written"
    assert (after.state, after.txid) == (states.FILLED, "OTX")
    assert (fake_store.transitions, fake_store.reads, fake_store.txids) == (0, 0, []), \
        "no conditional write bound to fail, no re-read of the row"
    assert events.sent == [("fill", "T1")] and not t._filling


def test_a_failed_fill_write_releases_the_waiting_move(fake_store: Calls, monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.services.oms.store import FillRecord

    t = tracker()
    fill, inst = _fill_and_instrument()
    release = asyncio.Event()

    async def record_fill(_db: Any, _fill: FillRecord, **_k: Any) -> None:
        await release.wait()
        raise ConnectionError("database gone")

    monkeypatch.setattr(store, "record_fill", record_fill)

    async def main() -> OrderRecord:
        writing = asyncio.create_task(t.record_fill(fill, inst))
        await asyncio.sleep(0)
        ack = asyncio.create_task(t.move(order(state=states.PENDING_NEW), states.NEW, "venue_acknowledged"))
        await asyncio.sleep(0.01)
        release.set()
        with pytest.raises(ConnectionError):
            await writing
        return await asyncio.wait_for(ack, 1)

    after = asyncio.run(main())
    assert after.state == states.FILLED, "the move went on as before: conditional write failed, row read again"
    assert (fake_store.transitions, fake_store.reads) == (1, 1) and not t._filling
