"""The ingest's v2 books: only what verifying a feed needs, per level a price key and a checksum fragment.

:class:`~sandbox.replay.book.V2Books` keeps every level as a
:class:`~sandbox.replay.book.Level` (price and quantity as ``Decimal``, both
texts, the fragment), because the venue's matching engine and the replay
tools read levels.  The ingest reads none of that: per book message it needs
the checksum of the top 10 levels, whether the book is crossed, and the book
truncated to its depth.  :class:`LeanV2Books` keeps exactly that, and costs
about a third of the CPU per message (a Kraken book update carries one or two
levels, so the fixed costs per message dominate).

Exactness is the same as :class:`~sandbox.replay.book.V2Books`, and the unit
tests compare the two message by message:

* levels are keyed by ``Decimal(price token)``: equal prices written
  differently (``"1.5"``, ``"1.50"``) are one level, order is numeric;
* a quantity is zero (the level is deleted) exactly when ``Decimal(qty token)``
  is zero.  A plain token (ASCII digits and at most one point) with a digit
  other than ``0`` is not zero, decided on its text; anything else goes
  through ``Decimal``;
* the checksum fragment of a level is its price then its quantity, digits
  only, leading zeros stripped, from the tokens as sent (kept in a list
  aligned with the price keys);
* a token that is not a number (``InvalidOperation``), a float (``TypeError``:
  frames must be parsed with float tokens kept as text) or a missing field
  (``KeyError``) raises like the full book does, and the feed resubscribes.
"""

from __future__ import annotations

import zlib
from bisect import bisect_left
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from sandbox.replay.book import BookCheck
from sandbox.replay.checksum import CHECKSUM_LEVELS, token_text

_TOP = CHECKSUM_LEVELS


class LeanSide:
    """One side: ascending price keys, and aligned with them (same index) each level's checksum fragment.

    The fragments are a list parallel to the keys, not a dict by key: a level's
    presence is read off the bisection the update needs anyway, and the best ten
    fragments are a slice of the list (joined in C), which is what rebuilding the
    checksum input costs once per message on a busy book.
    """

    __slots__ = ("keys", "frags", "descending", "top")

    def __init__(self, descending: bool) -> None:
        self.keys: list[Decimal] = []
        #: ``frags[i]``: the checksum fragment of the level at ``keys[i]``
        self.frags: list[str] = []
        self.descending = descending
        #: the side's part of the checksum input (ASCII), ``None`` when a change reached the best levels
        self.top: bytes | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def clear(self) -> None:
        """Forget every level."""
        self.keys.clear()
        self.frags.clear()
        self.top = None

    def fragment(self, key: Decimal) -> str | None:
        """The checksum fragment of the level at price ``key`` (``None`` when there is none)."""
        keys = self.keys
        index = bisect_left(keys, key)
        if index < len(keys) and keys[index] == key:
            return self.frags[index]
        return None

    def apply(self, items: Any) -> None:
        """Set or delete each v2 level ``{"price": P, "qty": Q}`` of ``items``, in order."""
        keys, frags, descending = self.keys, self.frags, self.descending
        for lv in items:
            pt, qt = lv["price"], lv["qty"]
            if type(pt) is not str:  # noqa: E721 - int tokens (and Decimals from other parsers) as text
                pt = token_text(pt)
            if type(qt) is not str:  # noqa: E721
                qt = token_text(qt)
            key = Decimal(pt)
            qdigits = qt.replace(".", "").lstrip("0")
            index = bisect_left(keys, key)
            size = len(keys)
            # (Decimal equality: "1.5" and "1.50" are one level, as they would be one dict key)
            present = index < size and keys[index] == key
            # Plain digits with a non-zero one: not zero, no Decimal needed.  Anything else decides by Decimal.
            if not (qdigits.isdigit() and qdigits.isascii() and qt.count(".") <= 1) and not Decimal(qt):
                if present:
                    if self.top is not None and (index >= size - _TOP if descending else index < _TOP):
                        self.top = None
                    del keys[index]
                    del frags[index]
                continue
            fragment = pt.replace(".", "").lstrip("0") + qdigits
            if present:
                frags[index] = fragment
            else:
                keys.insert(index, key)
                frags.insert(index, fragment)
                size += 1
            if self.top is not None and (index >= size - _TOP if descending else index < _TOP):
                self.top = None

    def truncate(self, depth: int) -> None:
        """Drop every level beyond the best ``depth``."""
        keys = self.keys
        excess = len(keys) - depth
        if excess <= 0:
            return
        frags = self.frags
        if self.descending:
            del keys[:excess]
            del frags[:excess]
        else:
            del keys[depth:]
            del frags[depth:]
        if depth < _TOP:
            self.top = None

    def fragments(self) -> bytes:
        """The best :data:`CHECKSUM_LEVELS` fragments, best first, as ASCII (cached until the best levels change)."""
        top = self.top
        if top is None:
            frags = self.frags
            top = self.top = "".join(frags[: -_TOP - 1 : -1] if self.descending else frags[:_TOP]).encode("ascii")
        return top

    def best(self) -> Decimal | None:
        """The best price (highest bid, lowest ask), ``None`` when empty."""
        keys = self.keys
        if not keys:
            return None
        return keys[-1] if self.descending else keys[0]


class LeanBook:
    """One symbol's book at a depth: two :class:`LeanSide`, the checksum and the crossed check."""

    __slots__ = ("symbol", "depth", "bids", "asks", "crc")

    def __init__(self, symbol: str, depth: int) -> None:
        self.symbol = symbol
        self.depth = depth
        self.bids = LeanSide(descending=True)
        self.asks = LeanSide(descending=False)
        #: the last checksum; still right while neither side's cached top was dropped
        self.crc: int | None = None

    def __len__(self) -> int:
        return len(self.bids) + len(self.asks)

    def checksum(self) -> int:
        """Kraken's CRC32 of the top 10 asks then the top 10 bids (unsigned).

        Most updates of a deep book land below the top 10: then neither side's
        cached input changed and the last CRC is the answer.  A side's cache is
        rebuilt only here, so both caches present means both unchanged since.
        """
        asks, bids = self.asks, self.bids
        crc = self.crc
        if crc is None or asks.top is None or bids.top is None:
            crc = self.crc = zlib.crc32(bids.fragments(), zlib.crc32(asks.fragments()))
        return crc

    @property
    def crossed(self) -> bool:
        """True when the best bid is at or above the best ask."""
        bids, asks = self.bids.keys, self.asks.keys
        return bool(bids) and bool(asks) and bids[-1] >= asks[0]


class LeanV2Books:
    """The books of one v2 connection, fed every parsed frame (the interface of :class:`~sandbox.replay.book.V2Books`).

    The depth of a symbol comes from its ``subscribe`` acknowledgement
    (``result.depth``), else ``default_depth``; an acknowledgement drops the
    symbol's book, which the next snapshot builds again.
    """

    def __init__(self, default_depth: int = 10) -> None:
        self.default_depth = default_depth
        self.depths: dict[str, int] = {}
        self.books: dict[str, LeanBook] = {}

    def handle(self, msg: Any) -> list[BookCheck]:
        """Apply ``msg`` if it is a book message; one check per symbol it touched."""
        if type(msg) is not dict:  # noqa: E721 - parsed JSON
            return []
        if msg.get("channel") == "book":
            kind = msg.get("type")
            if kind not in ("snapshot", "update"):
                return []
            return [BookCheck(symbol, kind, expected, computed, crossed, stamp)
                    for symbol, expected, computed, crossed, stamp in [self.apply(kind, item) for item in msg.get("data") or ()]]
        if msg.get("method") in ("subscribe", "unsubscribe") and msg.get("success"):
            self._acknowledged(msg["method"], msg.get("result") or {})
        return []

    def _acknowledged(self, method: str, result: Mapping[str, Any]) -> None:
        if result.get("channel") != "book" or "symbol" not in result:
            return
        symbol = result["symbol"]
        self.books.pop(symbol, None)
        if method == "subscribe":
            self.depths[symbol] = int(result.get("depth", self.default_depth))
        else:
            self.depths.pop(symbol, None)

    def apply(self, kind: str, item: Mapping[str, Any]) -> tuple[str, int | None, int | None, bool, Any]:
        """Apply one book item (``snapshot`` or ``update``) and check the book after it.

        Returns the fields of a :class:`~sandbox.replay.book.BookCheck` after ``kind``:
        ``(symbol, expected, computed, crossed, timestamp)`` (a tuple: this runs once per book message).
        """
        symbol = item["symbol"]
        book = self.books.get(symbol)
        if book is None:
            book = self.books[symbol] = LeanBook(symbol, self.depths.get(symbol, self.default_depth))
        bids, asks = book.bids, book.asks
        if kind == "snapshot":
            bids.clear()
            asks.clear()
        levels = item.get("bids")
        if levels:
            bids.apply(levels)
        levels = item.get("asks")
        if levels:
            asks.apply(levels)
        depth = book.depth
        if len(bids.keys) > depth:
            bids.truncate(depth)
        if len(asks.keys) > depth:
            asks.truncate(depth)
        expected = item.get("checksum")
        bid_keys, ask_keys = bids.keys, asks.keys
        crossed = bool(bid_keys) and bool(ask_keys) and bid_keys[-1] >= ask_keys[0]
        if expected is None:
            return symbol, None, None, crossed, item.get("timestamp")
        return symbol, int(expected), book.checksum(), crossed, item.get("timestamp")
