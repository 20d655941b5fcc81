"""From the replay to the matching engine: what the venue's replay driver calls per frame.

The market-data server applies every replayed frame to its
:class:`~sandbox.replay.player.MarketState`; after that, the trading side needs
the book that frame changed and the trades it carried.  :func:`replay_listener`
returns the callable to run after each frame is applied::

    listener = replay_listener(venue)
    ...
    state.apply(frame)
    listener(frame, state)

It handles Kraken v2 (``{"channel": "book"|"trade", ...}``) and v1 (array)
frames.  :func:`feed_frames` plays raw frames (text) straight into a venue
without a server, for tests and tools (:class:`FrameFeeder` keeps the books
between calls).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from sandbox.replay.book import V1Books, V2Books, parse_frame
from sandbox.replay.protocol import classify


def replay_listener(venue: Any) -> Callable[[Any, Any], None]:
    """A ``(frame, market_state)`` callable that forwards book changes and trades to ``venue``."""

    def listener(frame: Any, state: Any) -> None:
        info = frame.info
        if info.kind == "book":
            for symbol in info.symbols:
                book = state.book(symbol)
                if book is not None:
                    venue.on_book(symbol, book)
        elif info.kind == "trade":
            for symbol, price, qty, side in trades_of(frame.msg, info.api):
                venue.on_trade(symbol, price, qty, side)

    return listener


def trades_of(msg: Any, api: str) -> list[tuple[str, Any, Any, str]]:
    """``(symbol, price, qty, taker side)`` of each trade in a v2 or v1 trade frame."""
    if api == "v2":
        return [(t["symbol"], t["price"], t["qty"], t["side"]) for t in msg.get("data") or ()]
    pair = msg[-1]
    return [(pair, t[0], t[1], t[3]) for t in msg[1]]


class FrameFeeder:
    """Plays raw Kraken frames (v1 or v2, text) into a venue without a server, keeping the books between calls."""

    def __init__(self, venue: Any) -> None:
        self.venue = venue
        self.books: dict[str, V2Books | V1Books] = {"v2": V2Books(), "v1": V1Books()}

    def feed(self, frames: Iterable[str | bytes]) -> int:
        """Apply ``frames`` in order; returns how many were book or trade frames."""
        count = 0
        for text in frames:
            msg = parse_frame(text)
            try:
                info = classify(msg)
            except ValueError:
                continue
            adapter = self.books[info.api]
            if info.kind == "book":
                adapter.handle(msg)
                for symbol in info.symbols:
                    book = adapter.books.get(symbol)
                    if book is not None:
                        self.venue.on_book(symbol, book)
                count += 1
            elif info.kind == "trade":
                for symbol, price, qty, side in trades_of(msg, info.api):
                    self.venue.on_trade(symbol, price, qty, side)
                count += 1
            else:
                adapter.handle(msg)
        return count


def feed_frames(venue: Any, frames: Iterable[str | bytes]) -> int:
    """Play ``frames`` into ``venue`` with a fresh :class:`FrameFeeder`; returns book and trade frames applied."""
    return FrameFeeder(venue).feed(frames)
