"""Kraken WebSocket messages into normalised Kafka records: one per data frame and symbol.

One record per Kraken data frame and symbol it carries: a v2 book snapshot or
update of one symbol, a v2 trade frame's trades of one symbol, a v1 book or
trade frame, and so on.  That is exactly what a fixture's manifest counts
(``symbol_counts``: received data frames per channel and symbol), so a replay
is verified by comparing the records consumed per topic with the manifest.
:func:`messages_of` is the single definition of that rule.

A record's key is the symbol; its value is compact JSON with every price and
quantity written as the string Kraken sent (``"0.00005100"``, never a float)::

    {"exchange": "kraken", "api": "v2", "channel": "book", "type": "update",
     "symbol": "BTC/USD", "seq": 42, "run": "live-1a2b", "exchange_ts": "2026-07-07T23:00:03.977459Z",
     "recv_ns": 1783465203977459000, "bids": [], "asks": [["1774.14", "2.00130641"]], "checksum": 3356266482}

Book records carry ``bids``, ``asks`` (``[price, qty]`` pairs as sent; v1 adds
the level's timestamp) and ``checksum``; every other channel carries ``items``,
the frame's items for that symbol (v2 objects, v1 arrays) with numbers as text.
``seq`` counts the records of one topic from 1 for the life of the ingest
process; ``run`` names the process's run or the replay run, so a consumer can
prove that nothing between the ingest and Kafka was lost or reordered.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import msgspec

from sandbox.replay.checksum import token_text

_TOPIC_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
#: The same bytes as ``_dumps(value).encode()`` for values made of str, int, bool, None, lists and
#: dicts with str keys (checked for every Unicode character and integers beyond 64 bits; a lone
#: surrogate raises UnicodeEncodeError in both), about ten times faster.  Floats and Decimals are
#: written differently (``1e-05`` against ``0.00001``), so it is used only on payloads that cannot
#: hold them: see :attr:`Normaliser.text_tokens`.
_dumps_plain = msgspec.json.Encoder().encode

#: Integer identifiers kept as JSON integers (they are no prices or quantities).
INTEGER_FIELDS = frozenset({"trade_id", "checksum"})
#: v1 trade arrays: ``[price, volume, time, side, orderType, misc(, trade_id)]``.
V1_TRADE_FIELDS = ("price", "qty", "time", "side", "ord_type", "misc", "trade_id")


def topic_for(prefix: str, channel: str, symbol: str) -> str:
    """``kraken.book.XBT-USD``: the slash becomes a dash, anything else Kafka refuses an underscore."""
    return f"{prefix}.{channel}.{_TOPIC_UNSAFE.sub('_', symbol.replace('/', '-'))}"


def text(value: Any) -> Any:
    """A number as the exact text of its token; anything else unchanged."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def texts(value: Any) -> Any:
    """``value`` with every number as text, recursively (integer identifiers stay integers)."""
    kind = type(value)
    if kind is dict:
        return {
            k: (v if type(v) is str or k in INTEGER_FIELDS else texts(v))  # noqa: E721 - text tokens pass as they are
            for k, v in value.items() if k != "symbol"
        }
    if kind is list:
        return [v if type(v) is str else texts(v) for v in value]  # noqa: E721
    return text(value)


def v1_channel(name: str) -> str:
    """``book-10`` -> ``book``; ``ohlc-5`` -> ``ohlc``."""
    return name.split("-", 1)[0]


def messages_of(msg: Any) -> Iterator[tuple[str, str, str | None, Any]]:
    """``(channel, symbol, type, payload)`` per symbol of a parsed Kraken data frame (v1 or v2).

    ``payload`` is a v2 book item, a list of v2 items of that symbol, the list
    of v1 book payload objects, or the v1 frame's payload.  Control frames
    (status, heartbeat, acknowledgements, pongs) yield nothing.
    """
    if type(msg) is dict:  # noqa: E721 - parsed JSON; an exact type check is the hot path's cheapest
        channel = msg.get("channel")
        if channel is None or channel in ("status", "heartbeat"):
            return
        kind = msg.get("type")
        data = [d for d in msg.get("data") or () if type(d) is dict and "symbol" in d]  # noqa: E721
        if channel == "book":  # Kraken sends one book item per symbol and frame
            for item in data:
                yield channel, item["symbol"], kind, item
            return
        groups: dict[str, list[Any]] = {}
        for item in data:
            groups.setdefault(item["symbol"], []).append(item)
        for symbol, items in groups.items():
            yield channel, symbol, kind, items
        return
    if not isinstance(msg, list) or len(msg) < 4 or not isinstance(msg[-2], str):
        return
    name, pair = msg[-2], msg[-1]
    channel = v1_channel(name)
    payloads = msg[1:-2]
    if channel == "book":
        snapshot = any(isinstance(p, Mapping) and ("as" in p or "bs" in p) for p in payloads)
        yield channel, pair, "snapshot" if snapshot else "update", payloads
    else:
        yield channel, pair, "update", payloads[0] if len(payloads) == 1 else payloads


def _levels(levels: Any) -> list[list[str]]:
    return [[token_text(lv["price"]), token_text(lv["qty"])] for lv in levels or ()]


def _v1_levels(payloads: list[Any], keys: tuple[str, ...]) -> list[list[Any]]:
    out: list[list[Any]] = []
    for p in payloads:
        if isinstance(p, Mapping):
            for key in keys:
                out.extend([text(x) for x in lv] for lv in p.get(key) or ())
    return out


def body(api: str, channel: str, payload: Any) -> tuple[dict[str, Any], Any]:
    """The channel-specific fields of one record and its exchange timestamp (as Kraken wrote it)."""
    if api == "v2":
        if channel == "book":
            fields = {"bids": _levels(payload.get("bids")), "asks": _levels(payload.get("asks")), "checksum": payload.get("checksum")}
            return fields, payload.get("timestamp")
        items = [texts(item) for item in payload]
        key = "interval_begin" if channel == "ohlc" else "timestamp"
        stamps = [item[key] for item in items if isinstance(item.get(key), str)]
        return {"items": items}, max(stamps) if stamps else None
    if channel == "book":
        bids, asks = _v1_levels(payload, ("bs", "b")), _v1_levels(payload, ("as", "a"))
        checksum = next((p["c"] for p in payload if isinstance(p, Mapping) and "c" in p), None)
        stamps = [lv[2] for lv in bids + asks if len(lv) > 2]
        fields = {"bids": bids, "asks": asks, "checksum": None if checksum is None else int(checksum)}
        return fields, max(stamps, key=Decimal) if stamps else None
    if channel == "trade":
        trades = [_v1_trade(t) for t in payload or ()]
        return {"items": trades}, trades[-1]["time"] if trades else None
    return {"items": texts(payload)}, None


def _v1_trade(trade: list[Any]) -> dict[str, Any]:
    fields = dict(zip(V1_TRADE_FIELDS, (text(v) for v in trade), strict=False))
    if isinstance(fields.get("trade_id"), str) and fields["trade_id"].isdigit():
        fields["trade_id"] = int(fields["trade_id"])
    return fields


class Normaliser:
    """Turns data messages into ``(topic, key, value, seq)`` records, numbering each topic's records."""

    def __init__(self, prefix: str = "kraken", api: str = "v2", run: str = "live", *, text_tokens: bool = False) -> None:
        self.prefix = prefix
        self.api = api
        self.run = run
        #: payloads come from a parser that keeps every float token as its text (the ingest's
        #: ``parse_frame``): no float or Decimal in them, so records are written with msgspec
        self.text_tokens = text_tokens
        #: records numbered so far, per topic
        self.seq: dict[str, int] = {}
        self._topics: dict[tuple[str, str], str] = {}
        self._heads: dict[str, str] = {}
        self._heads_run: tuple[str, str] | None = None
        #: per (channel, symbol): topic, key, head, and the run and api the head was written for
        self._fixed: dict[tuple[str, str], tuple[str, bytes, str, str, str, bytes]] = {}

    def topic(self, channel: str, symbol: str) -> str:
        """The topic of ``channel`` and ``symbol`` (memoised: called per record)."""
        key = (channel, symbol)
        topic = self._topics.get(key)
        if topic is None:
            topic = self._topics[key] = topic_for(self.prefix, channel, symbol)
        return topic

    def record(self, channel: str, symbol: str, kind: str | None, payload: Any, recv_ns: int) -> tuple[str, bytes, bytes, int]:
        """One record ``(topic, key, value, seq)`` with the next sequence number of its topic."""
        fixed = self._fixed.get((channel, symbol))
        if fixed is None or fixed[3] is not self.run or fixed[4] is not self.api:
            fixed = self._fix(channel, symbol)
        topic, key, head = fixed[0], fixed[1], fixed[2]
        seq = self.seq.get(topic, 0) + 1
        self.seq[topic] = seq
        if channel == "book" and self.api == "v2":
            tail = _v2_book_tail(payload)
            if tail is not None:
                stamp = payload.get("timestamp")
                kind_text = _KINDS.get(kind) if type(kind) is str else None  # noqa: E721
                value = (
                    f'{head},"type":{kind_text or _str(kind)},"seq":{seq},"exchange_ts":{_str(stamp)},"recv_ns":{recv_ns},{tail}}}'
                )
                return topic, key, value.encode(), seq
        fields, stamp = body(self.api, channel, payload)
        rest = {"type": kind, "seq": seq, "exchange_ts": text(stamp), "recv_ns": recv_ns, **fields}
        if self.text_tokens:
            return topic, key, fixed[5] + _dumps_plain(rest)[1:], seq
        return topic, key, (head + "," + _dumps(rest)[1:]).encode(), seq

    def _fix(self, channel: str, symbol: str) -> tuple[str, bytes, str, str, str, bytes]:
        """``(topic, key, head, run, api, head + "," as bytes)`` of ``channel`` and ``symbol``: what every
        record of theirs starts with."""
        topic = self.topic(channel, symbol)
        head = self._head(topic, channel, symbol)
        fixed = self._fixed[(channel, symbol)] = (topic, symbol.encode(), head, self.run, self.api, (head + ",").encode())
        return fixed

    def _head(self, topic: str, channel: str, symbol: str) -> str:
        """The fixed start of a topic's records (``{"exchange":...,"run":...``), cached per run."""
        if self._heads_run != (self.run, self.api):
            self._heads.clear()
            self._heads_run = (self.run, self.api)
        fixed = {"exchange": "kraken", "api": self.api, "channel": channel, "symbol": symbol, "run": self.run}
        head = self._heads[topic] = _dumps(fixed)[:-1]
        return head


#: The two book message types as JSON literals (what ``_str`` writes for them).
_KINDS = {"update": '"update"', "snapshot": '"snapshot"'}


def _str(value: Any) -> str:
    """A JSON literal for a short text field (C-escaped), ``null`` for ``None``."""
    if type(value) is str:  # noqa: E721
        return encode_basestring(value)
    return "null" if value is None else _dumps(text(value))


def _v2_book_tail(item: dict[str, Any]) -> str | None:
    """``"bids":[...],"asks":[...],"checksum":N`` built directly, or ``None`` to take the general path.

    The level tokens come from the JSON parser (float text or ints) and have
    already been read as Decimals by the book, so they are number literals.
    The result is checked all the same to be well-formed JSON by construction:
    exactly the quotes the template writes, no backslash, nothing unprintable
    (a token that was a JSON string with a quote, an escape or a control
    character in it fails this), and anything unexpected (a missing field, a
    non-integer checksum) falls back to the general encoder.
    """
    try:
        bids_levels = item.get("bids") or ()
        asks_levels = item.get("asks") or ()
        # (an update usually moves one side only: an empty side costs no comprehension)
        bids = ",".join([f'["{lv["price"]}","{lv["qty"]}"]' for lv in bids_levels]) if bids_levels else ""
        asks = ",".join([f'["{lv["price"]}","{lv["qty"]}"]' for lv in asks_levels]) if asks_levels else ""
    except (KeyError, TypeError):
        return None
    checksum = item.get("checksum")
    if checksum is not None and type(checksum) is not int:  # noqa: E721
        return None
    tail = f'"bids":[{bids}],"asks":[{asks}],"checksum":{"null" if checksum is None else checksum}'
    quotes = 4 * (len(bids_levels) + len(asks_levels)) + 6
    if tail.count('"') != quotes or "\\" in tail or "E" in tail or not tail.isprintable():
        return None  # ("E": a Decimal token prints with an exponent; the general path writes it in full)
    return tail
