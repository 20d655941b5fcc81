"""Continuity checks on the feed: trade-id gaps and exchange-time regressions.

Kraken's public channels carry no sequence numbers.  What can be checked:

* books: the checksum after every message (a missed or altered update shows as
  a mismatch; see :mod:`sandbox.replay.book`) and crossed books;
* trades: ``trade_id`` increases by exactly one per pair (v2, and v1 frames
  that carry it), so a jump is a gap of that many trades and a step back is a
  duplicate or reordering;
* v2 books and trades of both versions: the exchange timestamp never goes
  back (a v1 book update carries its levels' own stamps, older for revealed or
  deleted levels, so v1 books are left to their checksums).

Both trackers are reset per stream when the stream is resubscribed or the
connection is replaced (trades missed while disconnected are counted once,
as a gap, on the first trade after the reconnect).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class Continuity:
    """The outcome of one check: missing items and out-of-order items (both usually 0)."""

    missing: int = 0
    out_of_order: int = 0

    @property
    def ok(self) -> bool:
        """True when nothing was missing or out of order."""
        return not self.missing and not self.out_of_order


OK = Continuity()


class TradeIds:
    """Per symbol, the last ``trade_id`` seen; flags jumps and steps back."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def check(self, symbol: str, trade_id: Any) -> Continuity:
        """Record ``trade_id`` of ``symbol``; ids that are not integers are not checked."""
        if isinstance(trade_id, str) and trade_id.isdigit():
            trade_id = int(trade_id)
        if not isinstance(trade_id, int) or isinstance(trade_id, bool):
            return OK
        last = self.last.get(symbol)
        if last is not None and trade_id <= last:
            return Continuity(out_of_order=1)
        self.last[symbol] = trade_id
        if last is None or trade_id == last + 1:
            return OK
        return Continuity(missing=trade_id - last - 1)


class Clock:
    """Per stream, the latest exchange timestamp; flags any step back.

    Timestamps are compared as text of one format per stream: RFC 3339 in UTC
    with a fixed number of digits (v2) sorts like time; v1 epoch-seconds text
    is compared as numbers.
    """

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], Any] = {}

    def check(self, channel: str, symbol: str, stamp: Any) -> Continuity:
        """Record ``stamp`` for ``(channel, symbol)``; ``None`` (no timestamp) is not checked."""
        if stamp is None:
            return OK
        if isinstance(stamp, str) and not stamp.endswith("Z"):
            try:
                stamp = float(stamp)
            except ValueError:
                return OK
        key = (channel, symbol)
        last = self.last.get(key)
        if last is not None and type(last) is type(stamp) and stamp < last:
            return Continuity(out_of_order=1)
        self.last[key] = stamp
        return OK

    def in_order(self, key: tuple[str, str], stamp: str) -> bool:
        """``check(*key, stamp).ok`` for an RFC 3339 stamp (text ending in ``Z``), without the result object."""
        last = self.last.get(key)
        if last is not None and type(last) is str and stamp < last:  # noqa: E721
            return False
        self.last[key] = stamp
        return True

    def forget(self, channel: str, symbol: str) -> None:
        """Stop comparing ``(channel, symbol)`` (after a resubscribe: snapshots may be older)."""
        self.last.pop((channel, symbol), None)
