"""Kraken's rate limits: the REST call counter per API key and the trading counter per pair.

REST (Kraken's "Spot REST Rate Limits"): every API key has a call counter that
starts at 0; ledger and trade-history calls add 2, other calls add 1, and
AddOrder / CancelOrder are left to the trading limiter.  The counter decays
continuously by the tier's rate; a call that would take it above the tier's
maximum fails with ``EAPI:Rate limit exceeded`` (and, in this simulator, does
not count).

=============  ===========  ==========  ==================  ===========  ===========
tier           max counter  decay / s   trading threshold   decay / s    open orders
=============  ===========  ==========  ==================  ===========  ===========
starter        15           0.33        60                  1            60
intermediate   20           0.5         125                 2.34         80
pro            20           1           180                 3.75         225
=============  ===========  ==========  ==================  ===========  ===========

Trading ("Spot Trading Limits"): one counter per account and pair.  AddOrder
adds 1; CancelOrder adds a penalty that shrinks with the order's age (8 under
5 s, 6 under 10 s, 5 under 15 s, 4 under 45 s, 2 under 90 s, 1 under 300 s, 0
after).  Reaching the threshold fails the call with ``EOrder:Rate limit
exceeded``.  The open-order limit per pair gives ``EOrder:Orders limit
exceeded``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox.venue.trading.errors import ORDER_RATE_LIMIT, RATE_LIMIT, KrakenError


@dataclass(frozen=True)
class TierLimits:
    """The limits of one verification tier."""

    max_counter: float
    decay: float
    trading_threshold: float
    trading_decay: float
    max_open_orders: int


LIMITS = {
    "starter": TierLimits(15, 0.33, 60, 1.0, 60),
    "intermediate": TierLimits(20, 0.5, 125, 2.34, 80),
    "pro": TierLimits(20, 1.0, 180, 3.75, 225),
}

#: calls that cost 2 on the REST counter
HISTORY_CALLS = frozenset({"TradesHistory", "QueryTrades", "Ledgers", "QueryLedgers"})
#: calls that use the trading counter instead of the REST counter
TRADING_CALLS = frozenset({"AddOrder", "CancelOrder", "AddOrderBatch", "CancelOrderBatch", "EditOrder", "AmendOrder"})
#: CancelOrder penalty by order age: (age under, seconds -> points)
CANCEL_PENALTY = ((5, 8), (10, 6), (15, 5), (45, 4), (90, 2), (300, 1))


def rest_cost(method: str) -> int:
    """What ``method`` adds to the REST counter."""
    if method in TRADING_CALLS:
        return 0
    return 2 if method in HISTORY_CALLS else 1


def cancel_penalty(age_s: float) -> int:
    """Trading-counter points for cancelling an order ``age_s`` seconds old."""
    for limit, points in CANCEL_PENALTY:
        if age_s < limit:
            return points
    return 0


class DecayingCounter:
    """A counter that falls by ``decay`` per second, never below 0."""

    __slots__ = ("value", "stamp")

    def __init__(self) -> None:
        self.value = 0.0
        self.stamp: float | None = None

    def level(self, now: float, decay: float) -> float:
        """The counter at ``now``."""
        if self.stamp is not None and now > self.stamp:
            self.value = max(0.0, self.value - (now - self.stamp) * decay)
        if self.stamp is None or now > self.stamp:
            self.stamp = now
        return self.value

    def try_add(self, cost: float, limit: float, now: float, decay: float) -> bool:
        """Add ``cost`` unless that would take the counter above ``limit``; True if added."""
        if self.level(now, decay) + cost > limit:
            return False
        self.value += cost
        return True


class RateLimiter:
    """Every REST counter (per API key) and trading counter (per account and pair) of the venue."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._rest: dict[str, DecayingCounter] = {}
        self._trading: dict[tuple[str, str], DecayingCounter] = {}

    def reset(self) -> None:
        """Forget every counter."""
        self._rest.clear()
        self._trading.clear()

    def charge_rest(self, api_key: str, tier: str, method: str, now: float) -> None:
        """Count one call of ``method``; raises ``EAPI:Rate limit exceeded``."""
        cost = rest_cost(method)
        if not self.enabled or cost == 0:
            return
        limits = LIMITS[tier]
        counter = self._rest.setdefault(api_key, DecayingCounter())
        if not counter.try_add(cost, limits.max_counter, now, limits.decay):
            raise KrakenError(RATE_LIMIT)

    def charge_trading(self, account_id: str, pair: str, tier: str, points: float, now: float) -> None:
        """Count ``points`` on the account's trading counter for ``pair``; raises ``EOrder:Rate limit exceeded``."""
        if not self.enabled:
            return
        limits = LIMITS[tier]
        counter = self._trading.setdefault((account_id, pair), DecayingCounter())
        if not counter.try_add(points, limits.trading_threshold, now, limits.trading_decay):
            raise KrakenError(ORDER_RATE_LIMIT)

    def rest_level(self, api_key: str, tier: str, now: float) -> float:
        """The REST counter of ``api_key`` now."""
        counter = self._rest.get(api_key)
        return counter.level(now, LIMITS[tier].decay) if counter else 0.0

    def trading_level(self, account_id: str, pair: str, tier: str, now: float) -> float:
        """The trading counter of an account for ``pair`` now."""
        counter = self._trading.get((account_id, pair))
        return counter.level(now, LIMITS[tier].trading_decay) if counter else 0.0
