"""Kraken order books for WebSocket v1 and v2, kept as raw number tokens and Decimals.

Three layers, usable separately:

* :func:`parse_frame` - ``json.loads`` with ``parse_float=Decimal``, so v2's JSON
  numbers keep every digit of their token (v1 sends strings, which keep theirs).
* :class:`OrderBook` - one symbol's book at one depth: snapshot, update (quantity
  zero deletes), truncation to the depth (Kraken sends no deletions for levels
  that fall below it), best levels, crossed-book detection and the checksum.
* :class:`V2Books` and :class:`V1Books` - protocol adapters: feed them every
  parsed frame of a connection and they return one :class:`BookCheck` per book
  snapshot or update (symbol, expected and computed checksum, crossed flag).

Protocol facts this encodes: v2 sends a checksum on snapshots and updates, v1 on
updates only; a v1 update can carry its asks and bids in two objects
(``[id, {"a": ...}, {"b": ..., "c": ...}, "book-10", "XBT/USD"]``); the checksum
always covers the top 10 levels per side, whatever the subscribed depth.
"""

from __future__ import annotations

import json
from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple

from sandbox.replay.checksum import CHECKSUM_LEVELS, crc32_text, fragment, token_text

ZERO = Decimal(0)


def parse_frame(text: str | bytes) -> Any:
    """Parse one WebSocket frame, every JSON float token becoming an exact :class:`Decimal`."""
    return json.loads(text, parse_float=Decimal)


class Level(NamedTuple):
    """One price level: numeric values, the token texts as sent, and the checksum fragment."""

    price: Decimal
    qty: Decimal
    price_text: str
    qty_text: str
    #: price and quantity digits as they enter the checksum input
    fragment: str
    #: v1 only: the level's last-update time as sent (``"1693415330.621700"``)
    stamp: str | None = None


class _Side:
    """One side of a book: a dict of levels plus the prices in ascending order.

    The checksum input of the side (its best :data:`CHECKSUM_LEVELS` fragments)
    is cached and rebuilt only after a change that reached those levels: most
    updates of a deep book happen below them.
    """

    __slots__ = ("_keys", "_levels", "_descending", "_top")

    def __init__(self, descending: bool) -> None:
        self._keys: list[Decimal] = []
        self._levels: dict[Decimal, Level] = {}
        self._descending = descending
        #: the cached checksum fragments of the best levels, ``None`` when stale
        self._top: str | None = None

    def __len__(self) -> int:
        return len(self._keys)

    def _in_top(self, price: Decimal) -> bool:
        """True when ``price`` ranks among the best :data:`CHECKSUM_LEVELS` of the side as it stands."""
        keys = self._keys
        if len(keys) <= CHECKSUM_LEVELS:
            return True
        return price >= keys[-CHECKSUM_LEVELS] if self._descending else price <= keys[CHECKSUM_LEVELS - 1]

    def set(self, level: Level) -> None:
        price = level.price
        if price not in self._levels:
            insort(self._keys, price)
        self._levels[price] = level
        if self._top is not None and self._in_top(price):
            self._top = None

    def remove(self, price: Decimal) -> None:
        if price in self._levels:
            if self._top is not None and self._in_top(price):
                self._top = None
            del self._levels[price]
            del self._keys[bisect_left(self._keys, price)]

    def clear(self) -> None:
        self._keys.clear()
        self._levels.clear()
        self._top = None

    def best(self, n: int | None = None) -> list[Level]:
        """Up to ``n`` levels (all when ``None``), best first."""
        keys = self._keys
        if self._descending:
            chosen = keys[::-1] if n is None else keys[: -n - 1 : -1] if n < len(keys) else keys[::-1]
        else:
            chosen = keys if n is None else keys[:n]
        levels = self._levels
        return [levels[k] for k in chosen]

    def top_fragments(self) -> str:
        """The side's part of the checksum input: the best levels' fragments, best first (cached)."""
        top = self._top
        if top is None:
            keys, levels = self._keys, self._levels
            chosen = keys[: -CHECKSUM_LEVELS - 1 : -1] if self._descending else keys[:CHECKSUM_LEVELS]
            top = self._top = "".join([levels[k].fragment for k in chosen])
        return top

    def extreme(self) -> Decimal | None:
        """The best price (highest bid, lowest ask), ``None`` when empty."""
        keys = self._keys
        if not keys:
            return None
        return keys[-1] if self._descending else keys[0]

    def truncate(self, depth: int) -> None:
        """Drop every level beyond the best ``depth``."""
        excess = len(self._keys) - depth
        if excess <= 0:
            return
        if self._descending:
            dropped, self._keys = self._keys[:excess], self._keys[excess:]
        else:
            dropped, self._keys = self._keys[depth:], self._keys[:depth]
        for price in dropped:
            del self._levels[price]
        if depth < CHECKSUM_LEVELS:
            self._top = None


class OrderBook:
    """One symbol's book at a subscribed depth.

    Levels are given as ``(price, qty)`` pairs of raw tokens: ``str`` (v1),
    :class:`Decimal` from :func:`parse_frame` (v2) or ``int``; floats are refused.
    ``price_decimals`` / ``qty_decimals`` re-format numbers for the checksum, only
    for sources that lost trailing zeros; by default the tokens are used as sent.
    """

    def __init__(
        self,
        symbol: str,
        depth: int = 10,
        *,
        price_decimals: int | None = None,
        qty_decimals: int | None = None,
    ) -> None:
        self.symbol = symbol
        self.depth = depth
        self.price_decimals = price_decimals
        self.qty_decimals = qty_decimals
        self._bids = _Side(descending=True)
        self._asks = _Side(descending=False)

    def __len__(self) -> int:
        return len(self._bids) + len(self._asks)

    def __repr__(self) -> str:
        return f"OrderBook({self.symbol!r}, depth={self.depth}, bids={len(self._bids)}, asks={len(self._asks)})"

    # -- changes -----------------------------------------------------------------

    def clear(self) -> None:
        """Forget every level (before a new snapshot, or after a checksum mismatch)."""
        self._bids.clear()
        self._asks.clear()

    def apply_snapshot(self, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]) -> None:
        """Replace the book with ``bids`` and ``asks``, then truncate to the depth."""
        self.clear()
        self.apply_update(bids, asks)

    def apply_update(self, bids: Iterable[Sequence[Any]], asks: Iterable[Sequence[Any]]) -> None:
        """Apply level changes in order (quantity zero deletes), then truncate to the depth."""
        self.apply_levels(self._bids, bids)
        self.apply_levels(self._asks, asks)
        self.truncate()

    def apply_bids(self, levels: Iterable[Sequence[Any]]) -> None:
        """Apply bid changes without truncating (for updates split across objects)."""
        self.apply_levels(self._bids, levels)

    def apply_asks(self, levels: Iterable[Sequence[Any]]) -> None:
        """Apply ask changes without truncating (for updates split across objects)."""
        self.apply_levels(self._asks, levels)

    def apply_levels(self, side: _Side, levels: Iterable[Sequence[Any]]) -> None:
        """Set or delete each ``(price, qty[, stamp, ...])`` of ``levels`` on ``side``."""
        pdec, qdec = self.price_decimals, self.qty_decimals
        for lv in levels:
            price_tok, qty_tok = lv[0], lv[1]
            self._apply_level(side, price_tok, qty_tok, lv[2] if len(lv) > 2 else None, pdec, qdec)

    def apply_items(self, side: _Side, items: Iterable[Mapping[str, Any]]) -> None:
        """Set or delete each v2 level ``{"price": P, "qty": Q}`` of ``items`` on ``side``."""
        pdec, qdec = self.price_decimals, self.qty_decimals
        for lv in items:
            self._apply_level(side, lv["price"], lv["qty"], None, pdec, qdec)

    @staticmethod
    def _apply_level(side: _Side, price_tok: Any, qty_tok: Any, stamp: Any, pdec: int | None, qdec: int | None) -> None:
        # Text tokens (v1 strings; v2 parsed with float tokens kept as text) take the short way.
        if type(price_tok) is str:  # noqa: E721
            price_text = price_tok
            price = Decimal(price_tok)
        else:
            price_text = token_text(price_tok)
            price = price_tok if isinstance(price_tok, Decimal) else Decimal(price_text)
        if type(qty_tok) is str:  # noqa: E721
            qty_text = qty_tok
            qty = Decimal(qty_tok)
        else:
            qty_text = token_text(qty_tok)
            qty = qty_tok if isinstance(qty_tok, Decimal) else Decimal(qty_text)
        if not qty:
            side.remove(price)
            return
        if pdec is None and qdec is None:
            frag = price_text.replace(".", "").lstrip("0") + qty_text.replace(".", "").lstrip("0")
        else:
            frag = fragment(price_text, pdec) + fragment(qty_text, qdec)
        side.set(Level(price, qty, price_text, qty_text, frag, stamp))

    def truncate(self) -> None:
        """Keep only the best ``depth`` levels per side."""
        self._bids.truncate(self.depth)
        self._asks.truncate(self.depth)

    # -- reads -------------------------------------------------------------------

    def has_bid(self, price: Decimal) -> bool:
        """True when a bid level sits at ``price``."""
        return price in self._bids._levels

    def has_ask(self, price: Decimal) -> bool:
        """True when an ask level sits at ``price``."""
        return price in self._asks._levels

    def bids(self, n: int | None = None) -> list[Level]:
        """Up to ``n`` bid levels (all when ``None``), best (highest) first."""
        return self._bids.best(n)

    def asks(self, n: int | None = None) -> list[Level]:
        """Up to ``n`` ask levels (all when ``None``), best (lowest) first."""
        return self._asks.best(n)

    @property
    def best_bid(self) -> Level | None:
        """The highest bid, or ``None`` when the side is empty."""
        top = self._bids.best(1)
        return top[0] if top else None

    @property
    def best_ask(self) -> Level | None:
        """The lowest ask, or ``None`` when the side is empty."""
        top = self._asks.best(1)
        return top[0] if top else None

    @property
    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask (an impossible, corrupt book)."""
        bid, ask = self._bids.extreme(), self._asks.extreme()
        return bid is not None and ask is not None and bid >= ask

    def checksum_input(self) -> str:
        """The string Kraken hashes: top 10 asks then top 10 bids, digits only."""
        return self._asks.top_fragments() + self._bids.top_fragments()

    def checksum(self) -> int:
        """Kraken's CRC32 checksum of the current book (unsigned 32-bit)."""
        return crc32_text(self._asks.top_fragments() + self._bids.top_fragments())

    def as_dict(self) -> dict[str, Any]:
        """The book as ``{"symbol", "bids", "asks"}`` with levels as ``[price_text, qty_text]``."""
        return {
            "symbol": self.symbol,
            "bids": [[lv.price_text, lv.qty_text] for lv in self.bids()],
            "asks": [[lv.price_text, lv.qty_text] for lv in self.asks()],
        }


@dataclass(slots=True)
class BookCheck:
    """The outcome of applying one book snapshot or update."""

    symbol: str
    #: ``"snapshot"`` or ``"update"``
    kind: str
    #: the checksum Kraken sent, ``None`` when the message had none (v1 snapshots)
    expected: int | None
    #: our checksum of the book after the message, ``None`` when nothing was expected
    computed: int | None
    crossed: bool
    #: the exchange timestamp of the message where it carries one (v2 RFC 3339, v1 epoch seconds)
    timestamp: str | None = None

    @property
    def ok(self) -> bool:
        """True when the book is not crossed and the checksum matches (or none was sent)."""
        return not self.crossed and (self.expected is None or self.expected == self.computed)


def _check(book: OrderBook, kind: str, expected: Any, timestamp: str | None, verify: bool = True) -> BookCheck:
    expected_int = None if expected is None or not verify else int(expected)
    computed = None if expected_int is None else book.checksum()
    return BookCheck(book.symbol, kind, expected_int, computed, verify and book.crossed, timestamp)


class V2Books:
    """Books of one Kraken WebSocket v2 connection, fed every parsed frame.

    The depth of each symbol comes from its ``subscribe`` acknowledgement
    (``result.depth``), else ``default_depth``.  ``precisions`` maps a symbol to
    ``(price_decimals, qty_decimals)`` for sources whose numbers lost trailing
    zeros; real Kraken frames need none.  ``verify=False`` skips the checksum
    (and the crossed-book check): books are only maintained, for replaying.
    """

    def __init__(
        self,
        default_depth: int = 10,
        *,
        precisions: Mapping[str, tuple[int, int]] | None = None,
        verify: bool = True,
    ) -> None:
        self.default_depth = default_depth
        self.verify = verify
        self.precisions = dict(precisions or {})
        self.depths: dict[str, int] = {}
        self.books: dict[str, OrderBook] = {}

    def handle(self, msg: Any) -> list[BookCheck]:
        """Apply ``msg`` if it is a book message; return one check per symbol it touched."""
        if not isinstance(msg, dict):
            return []
        if msg.get("channel") == "book":
            kind = msg.get("type")
            if kind not in ("snapshot", "update"):
                return []
            return [self._apply(kind, item) for item in msg.get("data") or ()]
        if msg.get("method") in ("subscribe", "unsubscribe") and msg.get("success"):
            self._acknowledged(msg["method"], msg.get("result") or {})
        return []

    def _acknowledged(self, method: str, result: Mapping[str, Any]) -> None:
        if result.get("channel") != "book" or "symbol" not in result:
            return
        symbol = result["symbol"]
        if method == "subscribe":
            self.depths[symbol] = int(result.get("depth", self.default_depth))
            self.books.pop(symbol, None)
        else:
            self.depths.pop(symbol, None)
            self.books.pop(symbol, None)

    def book(self, symbol: str) -> OrderBook:
        """The book of ``symbol``, created empty at its subscribed depth when first needed."""
        book = self.books.get(symbol)
        if book is None:
            pdec, qdec = self.precisions.get(symbol, (None, None))
            depth = self.depths.get(symbol, self.default_depth)
            book = self.books[symbol] = OrderBook(symbol, depth, price_decimals=pdec, qty_decimals=qdec)
        return book

    def _apply(self, kind: str, item: Mapping[str, Any]) -> BookCheck:
        book = self.books.get(item["symbol"])
        if book is None:
            book = self.book(item["symbol"])
        if kind == "snapshot":
            book.clear()
        bids, asks = item.get("bids"), item.get("asks")
        if bids:
            book.apply_items(book._bids, bids)
        if asks:
            book.apply_items(book._asks, asks)
        book.truncate()
        return _check(book, kind, item.get("checksum"), item.get("timestamp"), self.verify)


class V1Books:
    """Books of one Kraken WebSocket v1 connection, fed every parsed frame.

    Book frames are arrays ``[channelID, payload..., "book-<depth>", pair]``; the
    depth is read from the channel name, so acknowledgements are optional.
    Snapshots carry ``"as"``/``"bs"``; updates ``"a"``/``"b"`` (possibly in two
    objects) and the checksum ``"c"`` in the last one.
    """

    def __init__(self, *, precisions: Mapping[str, tuple[int, int]] | None = None, verify: bool = True) -> None:
        self.precisions = dict(precisions or {})
        self.verify = verify
        self.books: dict[str, OrderBook] = {}

    def handle(self, msg: Any) -> list[BookCheck]:
        """Apply ``msg`` if it is a book frame; return its check (or nothing)."""
        if isinstance(msg, dict):
            if msg.get("event") == "subscriptionStatus" and msg.get("status") == "unsubscribed":
                self.books.pop(msg.get("pair", ""), None)
            return []
        if not isinstance(msg, list) or len(msg) < 4:
            return []
        name, pair = msg[-2], msg[-1]
        if not isinstance(name, str) or not name.startswith("book"):
            return []
        payloads = [p for p in msg[1:-2] if isinstance(p, dict)]
        book = self.book(pair, _depth_of(name))
        if any("as" in p or "bs" in p for p in payloads):
            book.clear()
            for p in payloads:
                book.apply_asks(_pairs(p.get("as")))
                book.apply_bids(_pairs(p.get("bs")))
            book.truncate()
            return [_check(book, "snapshot", None, _latest(payloads, ("as", "bs")), self.verify)]
        expected = None
        for p in payloads:
            book.apply_asks(_pairs(p.get("a")))
            book.apply_bids(_pairs(p.get("b")))
            expected = p.get("c", expected)
        book.truncate()
        return [_check(book, "update", expected, _latest(payloads, ("a", "b")), self.verify)]

    def book(self, pair: str, depth: int = 10) -> OrderBook:
        """The book of ``pair``, created empty at ``depth`` when first needed."""
        book = self.books.get(pair)
        if book is None or book.depth != depth:
            pdec, qdec = self.precisions.get(pair, (None, None))
            book = self.books[pair] = OrderBook(pair, depth, price_decimals=pdec, qty_decimals=qdec)
        return book


def _depth_of(channel_name: str) -> int:
    _, _, depth = channel_name.partition("-")
    return int(depth) if depth.isdigit() else 10


def _pairs(levels: Any) -> Sequence[Sequence[Any]]:
    return levels or ()


def _latest(payloads: list[dict[str, Any]], keys: tuple[str, str]) -> str | None:
    stamps = [lv[2] for p in payloads for k in keys for lv in p.get(k) or () if len(lv) > 2]
    return max(stamps, key=Decimal) if stamps else None
