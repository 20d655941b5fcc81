"""CancelAllOrdersAfter: every open order is cancelled when the timer runs out, unless pushed back or disabled."""

from __future__ import annotations

import asyncio

import pytest


@pytest.fixture
def resting(market, trader):
    market.book([("29990.0", "1.0")], [("30010.0", "1.0")])
    t = trader()
    t.buy("0.1", "29000.0")
    t.sell("0.1", "31000.0", pair="XBTUSD")
    return t


def test_orders_are_cancelled_after_the_timeout(resting, venue, clock) -> None:
    resting("CancelAllOrdersAfter", timeout=60)
    clock.advance(59.9)
    venue.tick()
    assert len(resting.account.open_orders) == 2
    clock.advance(0.2)
    venue.tick()
    assert resting.account.open_orders == {}
    reasons = {o.reason for o in resting.account.orders.values()}
    assert reasons == {"Cancel all orders after timeout"}
    assert resting.account.hold("ZUSD") == 0 and resting.account.hold("XXBT") == 0
    assert resting.account.cancel_after is None  # the timer is disabled once it fired


def test_pushing_the_timer_back_keeps_the_orders(resting, venue, clock) -> None:
    resting("CancelAllOrdersAfter", timeout=60)
    for _ in range(5):
        clock.advance(30)
        resting("CancelAllOrdersAfter", timeout=60)
        venue.tick()
    assert len(resting.account.open_orders) == 2


def test_timeout_zero_disables_the_switch(resting, venue, clock) -> None:
    resting("CancelAllOrdersAfter", timeout=60)
    assert resting("CancelAllOrdersAfter", timeout=0)["triggerTime"] == "0"
    clock.advance(120)
    venue.tick()
    assert len(resting.account.open_orders) == 2


def test_the_switch_is_per_account(resting, trader, venue, clock) -> None:
    other = trader()
    other.buy("0.1", "29000.0")
    resting("CancelAllOrdersAfter", timeout=10)
    clock.advance(11)
    venue.tick()
    assert resting.account.open_orders == {} and len(other.account.open_orders) == 1


def test_the_venues_own_ticker_fires_it(catalog) -> None:
    """With the real clock, the background ticker started by ``venue.start()`` cancels the orders."""
    from sandbox.venue.trading.venue import TradingVenue

    async def main() -> None:
        venue = TradingVenue(catalog, tick_interval_s=0.01)
        account, key = venue.accounts.create(balances={"ZUSD": "100000"})
        venue.engine.set_book(venue.pairs.get("XBTUSD"), [("29990.0", "1")], [("30010.0", "1")])
        from sandbox.venue.trading.private_api import PrivateApi

        api = PrivateApi(venue)
        api.call("AddOrder", key, {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.0",
                                   "volume": "0.1"})
        account.cancel_after = venue.clock() + 0.05  # what CancelAllOrdersAfter does, below a second
        await venue.start()
        try:
            for _ in range(100):
                if not account.open_orders:
                    break
                await asyncio.sleep(0.01)
        finally:
            await venue.stop()
        assert account.open_orders == {}

    asyncio.run(main())
