"""Ingest records into rows of the mirror's tables (pure functions, no I/O).

A record (see :mod:`sandbox.ingest.normalise`) becomes: one ``market_trades``
row per trade item, one ``market_top_of_book`` row per book record (the top of
the book after applying it), one ``market_ohlc`` row per bar item.  Numbers stay
the exact text Kraken sent (PostgreSQL parses them into ``numeric``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sandbox.replay.book import OrderBook

#: Kraken's book depths: a snapshot with fewer levels (a thin book) was still subscribed at one of these.
KRAKEN_DEPTHS = (10, 25, 100, 500, 1000)
_EPOCH = re.compile(r"^\d+(\.\d+)?$")
_V1_SIDES = {"b": "buy", "s": "sell"}
_V1_TYPES = {"m": "market", "l": "limit"}


def parse_ts(value: Any) -> datetime | None:
    """A Kraken timestamp as UTC: RFC 3339 (v2, ``...Z``) or epoch seconds as text (v1)."""
    if value is None or value == "":
        return None
    text = str(value)
    if _EPOCH.match(text):
        seconds = Decimal(text)
        whole = int(seconds)
        micros = int((seconds - whole) * 1_000_000)
        return datetime.fromtimestamp(whole, UTC) + timedelta(microseconds=micros)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def depth_for(levels: int) -> int:
    """The subscribed depth a snapshot of ``levels`` levels per side came from."""
    return next((d for d in KRAKEN_DEPTHS if d >= levels), max(levels, KRAKEN_DEPTHS[-1]))


class TopOfBook:
    """The books of one topic's records, maintained to produce the top of book per record."""

    def __init__(self, symbol: str, depth: int = 10) -> None:
        self.book = OrderBook(symbol, depth)
        self.synced = False
        """True once a snapshot was applied: updates before it cannot give a top of book."""

    def apply(self, record: dict[str, Any]) -> tuple[Any, Any, Any, Any] | None:
        """Apply a book record; ``(bid_price, bid_qty, ask_price, ask_qty)`` after it, or ``None``.

        ``None`` when the book is not synced yet (no snapshot seen) or one side is empty.
        """
        bids, asks = record.get("bids") or [], record.get("asks") or []
        if record.get("type") == "snapshot":
            self.book.depth = depth_for(max(len(bids), len(asks)))
            self.book.apply_snapshot(bids, asks)
            self.synced = True
        elif self.synced:
            self.book.apply_update(bids, asks)
        else:
            return None
        bid, ask = self.book.best_bid, self.book.best_ask
        if bid is None or ask is None:
            return None
        return bid.price_text, bid.qty_text, ask.price_text, ask.qty_text

    def state(self) -> dict[str, Any]:
        """JSON-ready state, stored with the committed offset so a rerun continues the book."""
        return {
            "depth": self.book.depth,
            "synced": self.synced,
            "bids": [[lv.price_text, lv.qty_text] for lv in self.book.bids()],
            "asks": [[lv.price_text, lv.qty_text] for lv in self.book.asks()],
        }

    @classmethod
    def from_state(cls, symbol: str, state: dict[str, Any] | None) -> TopOfBook:
        """Inverse of :meth:`state` (an empty, unsynced book for ``None``)."""
        tob = cls(symbol, int((state or {}).get("depth", 10)))
        if state and state.get("synced"):
            tob.book.apply_snapshot(state.get("bids") or [], state.get("asks") or [])
            tob.synced = True
        return tob


def trade_rows(record: dict[str, Any], topic: str, offset: int) -> list[tuple[Any, ...]]:
    """``market_trades`` rows of a trade record (v2 objects or v1 items)."""
    rows = []
    symbol = record["symbol"]
    for i, item in enumerate(record.get("items") or ()):
        if record.get("api") == "v1":
            ts, side, ord_type = parse_ts(item.get("time")), _V1_SIDES.get(item.get("side"), item.get("side")), _V1_TYPES.get(item.get("ord_type"), item.get("ord_type"))
        else:
            ts, side, ord_type = parse_ts(item.get("timestamp")), item.get("side"), item.get("ord_type")
        trade_id = item.get("trade_id")
        rows.append((ts, symbol, item["price"], item["qty"], side, ord_type, int(trade_id) if trade_id is not None else None, topic, offset, i))
    return rows


def ohlc_rows(record: dict[str, Any], topic: str, offset: int) -> list[tuple[Any, ...]]:
    """``market_ohlc`` rows of an OHLC record (v2 bar objects; v1 ``[time, etime, o, h, l, c, vwap, volume, count]``)."""
    rows = []
    symbol = record["symbol"]
    items = record.get("items") or []
    if record.get("api") == "v1":
        # v1 carries one bar as a flat array; its interval is not in the record: the ingest subscribes 1-minute bars
        items = [items] if items and not isinstance(items[0], list) else items
        for i, bar in enumerate(items):
            end = parse_ts(bar[1])
            ts = end - timedelta(minutes=1) if end else None
            rows.append((ts, symbol, 1, bar[2], bar[3], bar[4], bar[5], bar[6], bar[7], int(bar[8]), topic, offset, i))
        return rows
    for i, bar in enumerate(items):
        trades = bar.get("trades")
        rows.append((
            parse_ts(bar.get("interval_begin")), symbol, int(bar.get("interval") or 1),
            bar.get("open"), bar.get("high"), bar.get("low"), bar.get("close"), bar.get("vwap"), bar.get("volume"),
            int(trades) if trades is not None else None, topic, offset, i,
        ))
    return rows
