"""Orders, fills and the identifiers the venue gives them.

Identifiers look like Kraken's (``OUF4EM-FRGI2-MQMWZD`` for orders,
``THVRQM-33VKH-UCI7BS`` for trades, an increasing integer ``trade_id``) and
come from a :class:`IdFactory` seeded by the venue's seed and its id epoch:
the same scenario replayed with the same seed and epoch gives the same
identifiers.  The venue process takes a new epoch each time it starts (the
platform's OMS keeps the txids of an earlier incarnation in its database, as
it would Kraken's, which never reuses one), and a reset continues the
factory it replaces, so no identifier is issued twice by one process.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sandbox.venue.trading.accounts import Account
    from sandbox.venue.trading.pairs import PairSpec

ZERO = Decimal(0)
_ALPHABET = string.ascii_uppercase + string.digits

#: Order states as Kraken's REST API names them
OPEN, CLOSED, CANCELED, EXPIRED = "open", "closed", "canceled", "expired"


class IdFactory:
    """Kraken-shaped identifiers drawn from a seeded generator (deterministic per seed)."""

    def __init__(self, seed: int, epoch: int = 0, after: IdFactory | None = None) -> None:
        """Identifiers of ``seed`` in ``epoch`` (0: the seed alone); ``after`` is the factory this one replaces."""
        self.rng = random.Random(f"aether-venue-ids:{seed}" + (f":{epoch}" if epoch else ""))
        #: shared with the replaced factory: a reset never reissues one of its txids
        self._issued: set[str] = after._issued if after is not None else set()
        self._trade_id = 40_000_000 + self.rng.randrange(1_000_000)
        if after is not None:
            self._trade_id = max(self._trade_id, after._trade_id)
        self._seq = 0

    def _txid(self, prefix: str) -> str:
        while True:
            chars = "".join(self.rng.choice(_ALPHABET) for _ in range(16))
            txid = f"{prefix}{chars[:5]}-{chars[5:10]}-{chars[10:]}"
            if txid not in self._issued:
                self._issued.add(txid)
                return txid

    def order_txid(self) -> str:
        """A new order id (``O.....-.....-......``)."""
        return self._txid("O")

    def trade_txid(self) -> str:
        """A new trade (fill) id (``T.....-.....-......``)."""
        return self._txid("T")

    def trade_id(self) -> int:
        """The venue's next public trade number (shared by both sides of a fill)."""
        self._trade_id += 1
        return self._trade_id

    def sequence(self) -> int:
        """The next order sequence number: time priority within a price level."""
        self._seq += 1
        return self._seq


@dataclass(eq=False)
class Order:
    """One order of one account."""

    txid: str
    account: Account
    pair: PairSpec
    side: str
    ordertype: str
    vol: Decimal
    price: Decimal | None
    opentm: float
    seq: int
    userref: int | None = None
    cl_ord_id: str | None = None
    post_only: bool = False
    #: fee charged in the base currency (``fcib``) rather than the quote currency (``fciq``)
    fee_in_base: bool = False
    timeinforce: str = "GTC"
    expiretm: float | None = None
    #: self-trade prevention: ``cancel-newest`` (Kraken's default), ``cancel-oldest`` or ``cancel-both``
    stptype: str = "cancel-newest"
    status: str = OPEN
    vol_exec: Decimal = ZERO
    cost: Decimal = ZERO
    fee: Decimal = ZERO
    closetm: float | None = None
    reason: str | None = None
    trades: list[str] = field(default_factory=list)
    #: anonymous (replayed) quantity queued ahead of this order at its price level
    ahead: Decimal = ZERO
    #: amount of ``hold_asset`` reserved for the unfilled part
    hold: Decimal = ZERO
    hold_asset: str = ""
    #: the fill rate in percent used for the hold (taker rate at entry)
    hold_rate: Decimal = ZERO

    @property
    def remaining(self) -> Decimal:
        """Volume not executed yet."""
        return self.vol - self.vol_exec

    @property
    def is_open(self) -> bool:
        """True while the order can still trade."""
        return self.status == OPEN

    @property
    def avg_price(self) -> Decimal:
        """Average execution price (0 before any fill)."""
        return self.cost / self.vol_exec if self.vol_exec else ZERO

    @property
    def oflags(self) -> str:
        """The order flags as Kraken lists them (``post,fciq``)."""
        flags = ["post"] if self.post_only else []
        flags.append("fcib" if self.fee_in_base else "fciq")
        return ",".join(flags)


@dataclass
class Fill:
    """One execution of one order (a Kraken "trade" of the account)."""

    txid: str
    order: Order
    trade_id: int
    time: float
    price: Decimal
    vol: Decimal
    cost: Decimal
    fee: Decimal
    fee_asset: str
    maker: bool
    postxid: str = ""
    #: cumulative figures of the order after this fill (for the executions channel)
    cum_qty: Decimal = ZERO
    cum_cost: Decimal = ZERO
    #: the counterparty: ``None`` for the replayed market, else the other order's txid
    contra: str | None = None
