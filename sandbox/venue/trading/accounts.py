"""Accounts of the simulated venue: API keys, per-key nonces, balances with holds, 30-day volume.

An :class:`Account` owns balances per REST asset code (``ZUSD``, ``XXBT``...),
the part of each held by open orders (``hold_trade``), its orders and trades,
a verification tier (which sets its rate limits) and a 30-day traded volume in
USD (which sets its fee tier for every pair, from the pair's ``fees`` and
``fees_maker`` tiers).  Each :class:`ApiKey` belongs to one account and keeps
its own nonce state: Kraken requires each key's nonces to increase, unless the
key has a *nonce window*, within which nonces may arrive out of order but
never twice.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sandbox.venue.trading.errors import INVALID_ARGUMENTS, KrakenError
from sandbox.venue.trading.signing import new_api_key, new_api_secret

if TYPE_CHECKING:
    from sandbox.venue.trading.orders import Fill, Order

ZERO = Decimal(0)
#: Kraken's verification tiers, which set the rate limits (see :mod:`.ratelimit`)
TIERS = ("starter", "intermediate", "pro")
THIRTY_DAYS = 30 * 86400
#: the largest nonce Kraken accepts (an unsigned 64-bit integer)
MAX_NONCE = 2**64 - 1


class NonceGuard:
    """One API key's nonces: strictly increasing, or within ``window`` of the highest and unseen."""

    def __init__(self, window: int = 0) -> None:
        self.window = max(0, int(window))
        self.highest = 0
        self._seen: set[int] = set()

    def accept(self, nonce: int) -> bool:
        """Record ``nonce`` and return True if the key may use it."""
        if nonce > self.highest:
            self.highest = nonce
            if self.window:
                self._seen.add(nonce)
                floor = nonce - self.window
                if len(self._seen) > 64:
                    self._seen = {n for n in self._seen if n > floor}
            return True
        if self.window and nonce > self.highest - self.window and nonce not in self._seen:
            self._seen.add(nonce)
            return True
        return False


@dataclass
class ApiKey:
    """A key pair: the public key sent in ``API-Key`` and the base64 secret that signs."""

    key: str
    secret: str
    account: Account
    nonces: NonceGuard = field(default_factory=NonceGuard)
    name: str = ""

    def public(self) -> dict[str, Any]:
        """The key as the admin API lists it (the secret is shown only when created)."""
        return {"api_key": self.key, "name": self.name, "nonce_window": self.nonces.window,
                "last_nonce": self.nonces.highest}


@dataclass(eq=False)
class Account:
    """One venue account."""

    id: str
    name: str = ""
    tier: str = "intermediate"
    #: 30-day volume (USD) the account starts with, so a scenario can place it in a fee tier
    base_volume: Decimal = ZERO
    balances: dict[str, Decimal] = field(default_factory=dict)
    holds: dict[str, Decimal] = field(default_factory=dict)
    orders: dict[str, Order] = field(default_factory=dict)
    open_orders: dict[str, Order] = field(default_factory=dict)
    trades: list[Fill] = field(default_factory=list)
    #: ``(time, usd value)`` of each trade in the last 30 days
    volume_log: deque[tuple[float, Decimal]] = field(default_factory=deque)
    #: dead man's switch: epoch time after which every open order is cancelled (``None``: off)
    cancel_after: float | None = None

    # -- balances -------------------------------------------------------------------------

    def balance(self, asset: str) -> Decimal:
        """Total balance of ``asset`` (held part included, as Kraken's Balance reports it)."""
        return self.balances.get(asset, ZERO)

    def hold(self, asset: str) -> Decimal:
        """The part of ``asset`` held by open orders (BalanceEx's ``hold_trade``)."""
        return self.holds.get(asset, ZERO)

    def available(self, asset: str) -> Decimal:
        """What new orders may use: balance minus holds."""
        return self.balance(asset) - self.hold(asset)

    def credit(self, asset: str, amount: Decimal) -> None:
        """Add ``amount`` (negative to debit) to the balance of ``asset``."""
        self.balances[asset] = self.balance(asset) + amount

    def adjust_hold(self, asset: str, delta: Decimal) -> None:
        """Grow (or with a negative ``delta`` shrink) the amount of ``asset`` held by orders."""
        value = self.hold(asset) + delta
        self.holds[asset] = value if value > ZERO else ZERO

    # -- volume ---------------------------------------------------------------------------

    def volume_30d(self, now: float) -> Decimal:
        """30-day traded volume in USD, the base volume included."""
        log = self.volume_log
        while log and log[0][0] < now - THIRTY_DAYS:
            log.popleft()
        return self.base_volume + sum((v for _, v in log), ZERO)

    def record_volume(self, when: float, usd: Decimal) -> None:
        """Count a trade worth ``usd`` towards the 30-day volume."""
        if usd > ZERO:
            self.volume_log.append((when, usd))

    def summary(self, now: float) -> dict[str, Any]:
        """The account as the admin API shows it (numbers as strings)."""
        assets = sorted(set(self.balances) | set(self.holds))
        return {
            "account_id": self.id,
            "name": self.name,
            "tier": self.tier,
            "volume_30d": str(self.volume_30d(now)),
            "balances": {a: {"balance": str(self.balance(a)), "hold_trade": str(self.hold(a))} for a in assets},
            "open_orders": len(self.open_orders),
            "orders": len(self.orders),
            "trades": len(self.trades),
            "cancel_after": self.cancel_after,
        }


class AccountRegistry:
    """Accounts and the API keys that reach them."""

    def __init__(self) -> None:
        self.accounts: dict[str, Account] = {}
        self.keys: dict[str, ApiKey] = {}
        self._ids = itertools.count(1)

    def create(
        self,
        *,
        name: str = "",
        balances: Mapping[str, Any] | None = None,
        tier: str = "intermediate",
        volume_30d: Any = 0,
        api_key: str | None = None,
        api_secret: str | None = None,
        nonce_window: int = 0,
        normalise_asset: Callable[[str], str] = lambda a: a,
    ) -> tuple[Account, ApiKey]:
        """A new account with one API key (generated unless given); raises ``EGeneral:Invalid arguments``."""
        if tier not in TIERS:
            raise KrakenError(f"{INVALID_ARGUMENTS}:tier")
        account = Account(id=f"AA{next(self._ids):04d}", name=name, tier=tier,
                          base_volume=_decimal(volume_30d, "volume_30d"))
        for asset, amount in (balances or {}).items():
            account.balances[normalise_asset(asset)] = _decimal(amount, f"balances.{asset}")
        key = self.add_key(account, api_key=api_key, api_secret=api_secret, nonce_window=nonce_window, name=name)
        self.accounts[account.id] = account
        return account, key

    def add_key(
        self, account: Account, *, api_key: str | None = None, api_secret: str | None = None,
        nonce_window: int = 0, name: str = "",
    ) -> ApiKey:
        """Another API key for ``account`` (each key has its own nonces and REST rate counter)."""
        key = api_key or new_api_key()
        if key in self.keys:
            raise KrakenError(f"{INVALID_ARGUMENTS}:api_key already exists")
        secret = api_secret or new_api_secret()
        from sandbox.venue.trading.signing import sign

        try:
            sign("/0/private/Balance", 1, "nonce=1", secret)
        except ValueError as exc:
            raise KrakenError(f"{INVALID_ARGUMENTS}:api_secret must be base64") from exc
        entry = ApiKey(key=key, secret=secret, account=account, nonces=NonceGuard(nonce_window), name=name)
        self.keys[key] = entry
        return entry

    def key(self, api_key: str) -> ApiKey | None:
        """The key ``api_key``, or ``None``."""
        return self.keys.get(api_key)

    def get(self, account_id: str) -> Account | None:
        """The account ``account_id``, or ``None``."""
        return self.accounts.get(account_id)

    def __iter__(self) -> Iterable[Account]:  # type: ignore[override]
        return iter(list(self.accounts.values()))


def _decimal(value: Any, where: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except ArithmeticError as exc:
        raise KrakenError(f"{INVALID_ARGUMENTS}:{where}") from exc
    if not result.is_finite():
        raise KrakenError(f"{INVALID_ARGUMENTS}:{where}")
    return result
