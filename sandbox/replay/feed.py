"""Writing Kraken frames: depth views of a book and the v1/v2 message builders.

Used by the generator (a deep "true" book shown at depth 10 or 100) and by the
venue simulator (a recorded book shown to a client at the depth it asked for).

:class:`DepthView` follows Kraken's rules for a depth-``d`` subscriber: an
update lists deletions first, then new or changed levels (including a level
revealed from below when one above it went); a level pushed out of the top
``d`` by a better one gets no message, because subscribers truncate to their
depth themselves.  A level that left the underlying book altogether is deleted
explicitly, so a view deeper than the book it is fed from stays exact too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any

from sandbox.replay.book import Level, OrderBook
from sandbox.replay.protocol import dumps_exact


def zero_like(qty_text: str) -> str:
    """A zero quantity with the same number of decimals: ``1.50000000`` -> ``0.00000000``."""
    _, dot, decimals = qty_text.partition(".")
    return "0." + "0" * len(decimals) if dot else "0"


class DepthView:
    """What a subscriber at ``depth`` has been sent about ``book``."""

    def __init__(self, book: OrderBook, depth: int) -> None:
        self.book = book
        self.depth = depth
        self._bids: dict[Decimal, Level] = {}
        self._asks: dict[Decimal, Level] = {}

    def snapshot(self) -> tuple[list[Level], list[Level]]:
        """The top ``depth`` levels per side (best first); the view now equals them."""
        bids, asks = self.book.bids(self.depth), self.book.asks(self.depth)
        self._bids = {lv.price: lv for lv in bids}
        self._asks = {lv.price: lv for lv in asks}
        return bids, asks

    def update(self) -> tuple[list[Level], list[Level]]:
        """The changes since the last call, per side: deletions (quantity zero) first, then sets."""
        bids, self._bids = _diff(self._bids, self.book.bids(self.depth), self.book.has_bid)
        asks, self._asks = _diff(self._asks, self.book.asks(self.depth), self.book.has_ask)
        return bids, asks


def _diff(
    shown: dict[Decimal, Level], top: list[Level], present: Callable[[Decimal], bool]
) -> tuple[list[Level], dict[Decimal, Level]]:
    now = {lv.price: lv for lv in top}
    deletes = [
        Level(lv.price, Decimal(0), lv.price_text, zero_like(lv.qty_text), "", lv.stamp)
        for price, lv in shown.items()
        if price not in now and not present(price)
    ]
    sets = [lv for lv in top if shown.get(lv.price) is not lv and _changed(shown.get(lv.price), lv)]
    return deletes + sets, now


def _changed(before: Level | None, after: Level) -> bool:
    return before is None or before.qty_text != after.qty_text


# -- v2 ---------------------------------------------------------------------------------


def v2_levels(levels: Iterable[Level]) -> str:
    """Levels as a v2 JSON array of ``{"price": P, "qty": Q}`` with the tokens as sent."""
    return "[" + ",".join(f'{{"price":{lv.price_text},"qty":{lv.qty_text}}}' for lv in levels) + "]"


def v2_book(
    kind: str, symbol: str, bids: Sequence[Level], asks: Sequence[Level], checksum: int, timestamp: str | None
) -> str:
    """A v2 ``book`` snapshot or update frame."""
    stamp = "" if timestamp is None else f',"timestamp":"{timestamp}"'
    return (
        f'{{"channel":"book","type":"{kind}","data":[{{"symbol":{json.dumps(symbol)},'
        f'"bids":{v2_levels(bids)},"asks":{v2_levels(asks)},"checksum":{checksum}{stamp}}}]}}'
    )


def v2_data(channel: str, kind: str, items: list[dict[str, Any]], **extra: Any) -> str:
    """A v2 data frame (``trade``, ``ticker``, ``ohlc``...)."""
    frame: dict[str, Any] = {"channel": channel, "type": kind}
    frame.update(extra)
    frame["data"] = items
    return dumps_exact(frame)


def v2_status(connection_id: int, *, system: str = "online", version: str = "2.0.10") -> str:
    """The ``status`` frame Kraken sends on connect."""
    data = {"version": version, "system": system, "api_version": "v2", "connection_id": connection_id}
    return dumps_exact({"channel": "status", "type": "update", "data": [data]})


V2_HEARTBEAT = '{"channel":"heartbeat"}'


def v2_ack(
    method: str, result: dict[str, Any], time_in: str, time_out: str, *, req_id: int | None = None,
    warnings: list[str] | None = None,
) -> str:
    """A successful ``subscribe`` / ``unsubscribe`` acknowledgement for one symbol."""
    if warnings:
        result = {**result, "warnings": warnings}
    doc: dict[str, Any] = {"method": method, "result": result, "success": True, "time_in": time_in, "time_out": time_out}
    if req_id is not None:
        doc["req_id"] = req_id
    return dumps_exact(doc)


def v2_error(
    method: str, error: str, time_in: str, time_out: str, *, symbol: str | None = None, req_id: int | None = None
) -> str:
    """A failed request: ``{"error": ..., "method": ..., "success": false, ...}``."""
    doc: dict[str, Any] = {"error": error, "method": method, "success": False}
    if symbol is not None:
        doc["symbol"] = symbol
    doc["time_in"], doc["time_out"] = time_in, time_out
    if req_id is not None:
        doc["req_id"] = req_id
    return dumps_exact(doc)


def v2_pong(time_in: str, time_out: str, *, req_id: int | None = None) -> str:
    """The answer to ``{"method": "ping"}``."""
    doc: dict[str, Any] = {"method": "pong"}
    if req_id is not None:
        doc["req_id"] = req_id
    doc["time_in"], doc["time_out"] = time_in, time_out
    return dumps_exact(doc)


# -- v1 ---------------------------------------------------------------------------------


def v1_level(lv: Level, stamp: str | None = None, republish: bool = False) -> list[str]:
    """A v1 level ``[price, volume, timestamp]`` (plus ``"r"`` when republished)."""
    out = [lv.price_text, lv.qty_text, stamp or lv.stamp or "0.000000"]
    if republish:
        out.append("r")
    return out


def v1_book_snapshot(channel_id: int, name: str, pair: str, bids: Sequence[Level], asks: Sequence[Level]) -> str:
    """``[channelID, {"as": [...], "bs": [...]}, "book-10", pair]``."""
    payload = {"as": [v1_level(lv) for lv in asks], "bs": [v1_level(lv) for lv in bids]}
    return dumps_exact([channel_id, payload, name, pair])


def v1_book_update(
    channel_id: int, name: str, pair: str, bids: Sequence[Level], asks: Sequence[Level], checksum: int,
    stamp: str | None = None,
) -> str:
    """A v1 book update; asks and bids in two objects when both sides changed, as Kraken does.

    ``stamp`` is the update's time: a level carrying an older stamp was revealed
    from below rather than changed, and is flagged ``"r"`` (republished).
    """
    def levels(side: Sequence[Level]) -> list[list[str]]:
        return [v1_level(lv, republish=bool(stamp and lv.stamp and lv.stamp < stamp and lv.qty)) for lv in side]

    check = str(checksum)
    if asks and bids:
        return dumps_exact([channel_id, {"a": levels(asks)}, {"b": levels(bids), "c": check}, name, pair])
    key, side = ("a", asks) if asks else ("b", bids)
    return dumps_exact([channel_id, {key: levels(side), "c": check}, name, pair])


def v1_system_status(connection_id: int, *, status: str = "online", version: str = "1.9.1") -> str:
    """The ``systemStatus`` event Kraken sends on connect."""
    return dumps_exact({"connectionID": connection_id, "event": "systemStatus", "status": status, "version": version})


V1_HEARTBEAT = '{"event":"heartbeat"}'


def v1_pong(reqid: Any = None) -> str:
    """The answer to ``{"event": "ping"}``."""
    return dumps_exact({"event": "pong", "reqid": reqid} if reqid is not None else {"event": "pong"})


def v1_subscription_status(
    status: str, subscription: dict[str, Any], *, pair: str | None = None, channel_id: int | None = None,
    channel_name: str | None = None, reqid: Any = None, error: str | None = None,
) -> str:
    """A ``subscriptionStatus`` event; Kraken's v1 writes its keys in alphabetical order."""
    doc: dict[str, Any] = {
        "channelID": channel_id,
        "channelName": channel_name,
        "errorMessage": error,
        "event": "subscriptionStatus",
        "pair": pair,
        "reqid": reqid,
        "status": status,
        "subscription": dict(sorted(subscription.items())),
    }
    return dumps_exact({k: v for k, v in doc.items() if v is not None})
