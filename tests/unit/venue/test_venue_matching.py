"""Matching against a synthetic book: walking levels, resting, crossing, queue position, priority."""

from __future__ import annotations

from decimal import Decimal

D = Decimal

import pytest

from sandbox.venue.trading.errors import KrakenError


ASKS = [("30010.0", "0.5"), ("30020.0", "1.0"), ("30030.0", "3")]
BIDS = [("29990.0", "1.0"), ("29980.0", "2.0")]


@pytest.fixture
def book(market):
    market.book(BIDS, ASKS)
    return market


def test_market_buy_walks_the_levels_with_partial_fills_at_several_prices(book, trader) -> None:
    t = trader(ZUSD="100000")
    txid = t.buy("1.2")
    assert t.fills(txid) == [(D("30010.0"), D("0.5"), False), (D("30020.0"), D("0.7"), False)]
    order = t.order(txid)
    assert order.status == "closed" and order.vol_exec == D("1.2")
    assert order.cost == D("15005.00000") + D("21014.00000")
    # taker fee of the first tier (0.26 %) on each fill, in USD, rounded to cost_decimals (5)
    assert [f.fee for f in t.account.trades] == [D("39.01300"), D("54.63640")]
    assert t.account.balance("XXBT") == D("1.2")
    assert t.account.balance("ZUSD") == D("100000") - order.cost - order.fee


def test_market_sell_walks_the_bids(book, trader) -> None:
    t = trader(XXBT="2")
    txid = t.sell("1.5")
    assert t.fills(txid) == [(D("29990.0"), D("1.0"), False), (D("29980.0"), D("0.5"), False)]
    assert t.account.balance("XXBT") == D("0.5")
    assert t.account.balance("ZUSD") == t.order(txid).cost - t.order(txid).fee


def test_market_order_larger_than_the_visible_book_is_cancelled_for_the_rest(book, trader) -> None:
    t = trader()
    txid = t.buy("5")
    order = t.order(txid)
    assert order.vol_exec == D("4.5") and order.status == "canceled" and order.reason == "Insufficient liquidity"


def test_liquidity_taken_is_not_taken_twice_until_the_level_changes(book, trader) -> None:
    a, b = trader(), trader()
    a.buy("0.5")
    assert b.fills(b.buy("0.5")) == [(D("30020.0"), D("0.5"), False)]
    book.update(asks=[("30010.0", "0.8")])  # the replayed level moved: its quantity is fresh
    assert b.fills(b.buy("0.3"))[-1] == (D("30010.0"), D("0.3"), False)


def test_limit_order_rests_and_fills_when_the_book_crosses_it(book, trader) -> None:
    t = trader()
    txid = t.buy("1.0", "30000.0")
    assert t.order(txid).is_open and t.fills(txid) == []
    book.update(asks=[("30000.0", "0.4")])  # a seller arrives at our price: we are the maker
    assert t.fills(txid) == [(D("30000.0"), D("0.4"), True)]
    book.update(asks=[("29995.0", "2.0")])  # the market falls through us: filled at our price
    assert t.fills(txid)[-1] == (D("30000.0"), D("0.6"), True)
    assert t.order(txid).status == "closed"
    # maker fee (0.16 %) on the first tier
    assert t.account.trades[0].fee == D("19.20000")


def test_marketable_limit_takes_what_it_can_then_rests_the_rest(book, trader) -> None:
    t = trader()
    txid = t.buy("1.0", "30010.0")
    assert t.fills(txid) == [(D("30010.0"), D("0.5"), False)]
    order = t.order(txid)
    assert order.is_open and order.remaining == D("0.5") and order.ahead == 0


def test_queue_position_trades_consume_the_quantity_ahead_first(book, trader) -> None:
    t = trader()
    txid = t.buy("0.5", "29990.0")
    assert t.order(txid).ahead == D("1.0")
    book.trade("29990.0", "0.6", "sell")
    assert t.fills(txid) == [] and t.order(txid).ahead == D("0.4")
    book.trade("29990.0", "0.6", "sell")
    assert t.fills(txid) == [(D("29990.0"), D("0.2"), True)]
    assert t.order(txid).ahead == 0
    book.trade("29990.0", "1", "buy")  # a buyer's trade does not touch resting bids
    assert t.order(txid).remaining == D("0.3")


def test_queue_position_cancellations_shrink_what_is_ahead(book, trader) -> None:
    t = trader()
    txid = t.buy("0.5", "29990.0")
    book.update(bids=[("29990.0", "1.5")])  # someone joins behind us: still 1.0 ahead
    assert t.order(txid).ahead == D("1.0")
    book.update(bids=[("29990.0", "0.25")])  # cancellations: at most 0.25 can be ahead now
    assert t.order(txid).ahead == D("0.25")
    book.trade("29990.0", "0.35", "sell")
    assert t.fills(txid) == [(D("29990.0"), D("0.1"), True)]


def test_a_trade_through_the_price_fills_at_once_whatever_is_ahead(book, trader) -> None:
    t = trader()
    txid = t.buy("0.5", "29990.0")
    book.trade("29985.0", "0.3", "sell")
    assert t.fills(txid) == [(D("29990.0"), D("0.3"), True)]


def test_price_then_time_priority_between_accounts(book, trader) -> None:
    first, second, better = trader(), trader(), trader()
    a = first.buy("0.5", "29995.0")
    b = second.buy("0.5", "29995.0")
    c = better.buy("0.5", "29996.0")
    book.trade("29995.0", "0.8", "sell")
    assert better.fills(c) == [(D("29996.0"), D("0.5"), True)]  # best price first (a trade through it)
    assert first.fills(a) == [(D("29995.0"), D("0.3"), True)]  # then the earlier order at the level
    assert second.fills(b) == []


def test_a_taker_meets_another_accounts_resting_order_before_worse_anonymous_liquidity(book, trader) -> None:
    maker, taker = trader(), trader()
    resting = maker.sell("0.3", "30005.0")
    txid = taker.buy("0.6")
    assert taker.fills(txid) == [(D("30005.0"), D("0.3"), False), (D("30010.0"), D("0.3"), False)]
    assert maker.fills(resting) == [(D("30005.0"), D("0.3"), True)]
    maker_fill, taker_fill = maker.account.trades[0], taker.account.trades[0]
    assert maker_fill.trade_id == taker_fill.trade_id and maker_fill.contra == txid


def test_self_trade_prevention_cancels_the_newest_order_by_default(book, trader) -> None:
    t = trader()
    resting = t.sell("0.3", "30005.0")
    txid = t.buy("0.6")
    assert t.order(txid).status == "canceled" and t.order(txid).reason == "Self trade prevention"
    assert t.order(resting).is_open


def test_post_only_that_would_take_is_cancelled_and_one_that_would_not_rests(book, trader) -> None:
    t = trader()
    crossing = t.buy("0.1", "30010.0", oflags="post")
    assert t.order(crossing).status == "canceled" and t.order(crossing).reason == "Post only order"
    assert t.fills() == [] and t.account.hold("ZUSD") == 0
    passive = t.buy("0.1", "30000.0", oflags="post")
    assert t.order(passive).is_open


def test_ioc_takes_what_it_can_and_cancels_the_rest(book, trader) -> None:
    t = trader()
    txid = t.buy("0.8", "30010.0", timeinforce="IOC")
    order = t.order(txid)
    assert order.vol_exec == D("0.5") and order.status == "canceled" and t.account.hold("ZUSD") == 0


def test_no_trades_while_the_pair_is_post_only_then_crossing_resumes(book, trader, venue) -> None:
    t = trader()
    txid = t.buy("0.5", "30000.0")
    venue.set_status("post_only", venue.pairs.get("XBTUSD"))
    book.update(asks=[("29999.0", "1.0")])
    book.trade("29999.0", "1.0", "sell")
    assert t.fills(txid) == []
    venue.set_status("online", venue.pairs.get("XBTUSD"))
    assert t.fills(txid) == [(D("30000.0"), D("0.5"), True)]


def test_gtd_orders_expire(book, trader, venue, clock) -> None:
    t = trader()
    txid = t.buy("0.1", "29000.0", timeinforce="GTD", expiretm="+30")
    venue.tick()
    assert t.order(txid).is_open
    clock.advance(31)
    venue.tick()
    assert t.order(txid).status == "expired" and t.account.hold("ZUSD") == 0


def test_an_unknown_pair_is_krakens_unknown_asset_pair(trader) -> None:
    with pytest.raises(KrakenError) as err:
        trader().buy("1", pair="NOPEUSD")
    assert err.value.errors == ["EQuery:Unknown asset pair"]


def test_the_book_the_engine_trades_against_shows_consumed_quantity(book, trader, venue) -> None:
    trader().buy("0.2")
    view = venue.engine.view(venue.pairs.get("XBTUSD"))
    assert view["source"] == "synthetic"
    assert view["asks"][0] == ["30010.0", "0.5", "0.2"]
    venue.engine.clear_book(venue.pairs.get("XBTUSD"))
    assert venue.engine.view(venue.pairs.get("XBTUSD"))["source"] == "none"


def test_decimal_results_are_exact(book, trader) -> None:
    t = trader(ZUSD="10")
    t.buy("0.00012345")
    assert t.account.balance("XXBT") == Decimal("0.00012345")
    assert t.account.balance("ZUSD") == D("10") - D("3.70473") - D("0.00963")
