"""Kraken's REST call counter (per API key, decaying per tier) and the per-pair trading counter."""

from __future__ import annotations

import pytest

from sandbox.venue.trading.errors import KrakenError
from sandbox.venue.trading.ratelimit import LIMITS, RateLimiter, cancel_penalty, rest_cost


def test_costs_per_call() -> None:
    assert rest_cost("Balance") == 1 and rest_cost("OpenOrders") == 1
    assert rest_cost("TradesHistory") == 2 and rest_cost("QueryTrades") == 2 and rest_cost("Ledgers") == 2
    assert rest_cost("AddOrder") == 0 and rest_cost("CancelOrder") == 0  # the trading limiter counts those


@pytest.mark.parametrize(
    ("tier", "burst", "per_second"), [("starter", 15, 0.33), ("intermediate", 20, 0.5), ("pro", 20, 1.0)]
)
def test_rest_counter_allows_the_tiers_burst_then_decays(tier: str, burst: int, per_second: float) -> None:
    limiter, now = RateLimiter(), 1000.0
    for _ in range(burst):
        limiter.charge_rest("key", tier, "Balance", now)
    with pytest.raises(KrakenError) as err:
        limiter.charge_rest("key", tier, "Balance", now)
    assert err.value.errors == ["EAPI:Rate limit exceeded"]
    # a rejected call does not count: after enough decay for one call, one call passes
    now += 1 / per_second + 1e-6
    limiter.charge_rest("key", tier, "Balance", now)
    with pytest.raises(KrakenError):
        limiter.charge_rest("key", tier, "Balance", now)
    assert limiter.rest_level("key", tier, now + 100) == 0


def test_rest_counters_are_per_key_and_history_calls_cost_two() -> None:
    limiter = RateLimiter()
    for _ in range(10):
        limiter.charge_rest("a", "intermediate", "TradesHistory", 0.0)
    with pytest.raises(KrakenError):
        limiter.charge_rest("a", "intermediate", "Balance", 0.0)
    limiter.charge_rest("b", "intermediate", "Balance", 0.0)
    assert limiter.rest_level("a", "intermediate", 0.0) == 20


def test_cancel_penalty_shrinks_with_order_age() -> None:
    assert [cancel_penalty(s) for s in (0, 4.9, 5, 12, 30, 60, 120, 301)] == [8, 8, 6, 5, 4, 2, 1, 0]


def test_trading_counter_per_pair() -> None:
    limiter, threshold = RateLimiter(), LIMITS["starter"].trading_threshold
    for _ in range(int(threshold)):
        limiter.charge_trading("acct", "XXBTZUSD", "starter", 1, 0.0)
    with pytest.raises(KrakenError) as err:
        limiter.charge_trading("acct", "XXBTZUSD", "starter", 1, 0.0)
    assert err.value.errors == ["EOrder:Rate limit exceeded"]
    limiter.charge_trading("acct", "XETHZUSD", "starter", 1, 0.0)  # another pair has its own counter
    limiter.charge_trading("acct", "XXBTZUSD", "starter", 1, 1.0)  # starter decays 1 per second


def test_the_rest_limit_through_the_private_api(venue, trader, clock) -> None:
    t = trader()
    for _ in range(20):
        t("Balance")
    with pytest.raises(KrakenError) as err:
        t("OpenOrders")
    assert err.value.errors == ["EAPI:Rate limit exceeded"]
    t("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="20000.0", volume="0.001")  # not counted here
    clock.advance(2.0)  # intermediate: 0.5 per second
    t("OpenOrders")


def test_quick_cancels_hit_the_trading_limit(venue, trader) -> None:
    t = trader(tier="starter")
    txids = [t.buy("0.001", "20000.0") for _ in range(6)]  # 6 points
    for txid in txids:  # 8 points each for orders under 5 s old: 6 + 48 = 54 < 60
        t("CancelOrder", txid=txid)
    again = t.buy("0.001", "20000.0")  # 55
    with pytest.raises(KrakenError) as err:
        t("CancelOrder", txid=again)  # 63 > 60
    assert err.value.errors == ["EOrder:Rate limit exceeded"]
    assert t.order(again).is_open
