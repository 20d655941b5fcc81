"""What a Kraken WebSocket frame is: API version, channel, symbols, exchange time.

Shared by the fixture writer (manifest counts), the validator (unknown
channels), the importers (pacing by the frames' own timestamps) and the venue
simulator.  Also :func:`dumps_exact`, which writes parsed frames back as compact
JSON with every :class:`~decimal.Decimal` as its own token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

#: v2 channels that carry market data (``{"channel": ..., "type": ..., "data": [...]}``).
V2_DATA_CHANNELS = frozenset({"book", "trade", "ticker", "ohlc", "instrument", "level3"})
#: v2 channels that carry connection state.
V2_CONTROL_CHANNELS = frozenset({"status", "heartbeat"})
#: v2 request/response methods.
V2_METHODS = frozenset({"subscribe", "unsubscribe", "ping", "pong", "error"})
#: v1 channel names (before any ``-<depth>`` / ``-<interval>`` suffix).
V1_DATA_CHANNELS = frozenset({"book", "trade", "ticker", "ohlc", "spread"})
#: v1 ``event`` values.
V1_EVENTS = frozenset(
    {"systemStatus", "subscriptionStatus", "heartbeat", "ping", "pong", "subscribe", "unsubscribe", "error"}
)
#: Kinds that the venue regenerates for each client rather than replaying.
CONTROL_KINDS = frozenset(
    {"status", "heartbeat", "subscribe", "unsubscribe", "ping", "pong", "error", "systemStatus", "subscriptionStatus"}
)


@dataclass(frozen=True, slots=True)
class FrameInfo:
    """The classification of one frame."""

    #: ``"v1"`` or ``"v2"``
    api: str
    #: channel for data frames (``book``, ``trade``...), else the method / event name
    kind: str
    symbols: tuple[str, ...] = ()
    #: ``"snapshot"`` / ``"update"`` for v2 data, ``"snapshot"`` / ``"update"`` for v1 books, else ``None``
    msg_type: str | None = None
    #: v1 channel name as sent (``book-10``, ``ohlc-5``); v2: ``None``
    channel_name: str | None = None
    known: bool = True

    @property
    def is_data(self) -> bool:
        """True for market-data frames (book, trade, ticker, ohlc, spread...)."""
        return self.kind not in CONTROL_KINDS


class UnknownFrame(ValueError):
    """A frame that is neither Kraken v1 nor v2."""


def detect_api(msg: Any) -> str | None:
    """``"v2"`` for ``channel``/``method`` objects, ``"v1"`` for ``event`` objects and arrays, else ``None``."""
    if isinstance(msg, list):
        return "v1"
    if isinstance(msg, Mapping):
        if "channel" in msg or "method" in msg:
            return "v2"
        if "event" in msg:
            return "v1"
    return None


def classify(msg: Any) -> FrameInfo:
    """Classify one parsed frame; raises :class:`UnknownFrame` when it is no Kraken frame at all."""
    api = detect_api(msg)
    if api == "v2":
        return _classify_v2(msg)
    if api == "v1":
        return _classify_v1(msg)
    raise UnknownFrame(f"not a Kraken v1 or v2 frame: {_short(msg)}")


def _classify_v2(msg: Mapping[str, Any]) -> FrameInfo:
    if "channel" in msg:
        channel = msg["channel"]
        data = msg.get("data")
        symbols: tuple[str, ...] = ()
        if isinstance(data, list):
            symbols = tuple(dict.fromkeys(d["symbol"] for d in data if isinstance(d, Mapping) and "symbol" in d))
        known = channel in V2_DATA_CHANNELS or channel in V2_CONTROL_CHANNELS
        return FrameInfo("v2", str(channel), symbols, msg.get("type"), known=known)
    method = msg["method"]
    result = msg.get("result")
    symbols = ()
    if isinstance(result, Mapping) and "symbol" in result:
        symbols = (result["symbol"],)
    elif "symbol" in msg:
        symbols = (msg["symbol"],)
    return FrameInfo("v2", str(method), symbols, known=method in V2_METHODS)


def _classify_v1(msg: Any) -> FrameInfo:
    if isinstance(msg, Mapping):
        event = msg["event"]
        symbols = (msg["pair"],) if isinstance(msg.get("pair"), str) else ()
        return FrameInfo("v1", str(event), symbols, known=event in V1_EVENTS)
    if len(msg) < 4 or not isinstance(msg[-2], str) or not isinstance(msg[-1], str):
        raise UnknownFrame(f"v1 data frame is not [channelID, payload..., channelName, pair]: {_short(msg)}")
    name, pair = msg[-2], msg[-1]
    base = name.split("-", 1)[0]
    msg_type = None
    if base == "book":
        msg_type = "snapshot" if any(isinstance(p, Mapping) and ("as" in p or "bs" in p) for p in msg[1:-2]) else "update"
    return FrameInfo("v1", base, (pair,), msg_type, channel_name=name, known=base in V1_DATA_CHANNELS)


# -- exchange timestamps -------------------------------------------------------------


def parse_rfc3339(text: str) -> float:
    """``2026-07-07T23:00:03.947173Z`` (up to nanoseconds) as epoch seconds."""
    main, _, frac = text.rstrip("Z").partition(".")
    minute = _MINUTES.get(main[:16])
    if minute is None:
        if len(_MINUTES) > 100_000:
            _MINUTES.clear()
        minute = _MINUTES[main[:16]] = datetime.strptime(main[:16], "%Y-%m-%dT%H:%M").replace(tzinfo=timezone.utc).timestamp()
    return minute + int(main[17:19]) + (float("0." + frac) if frac else 0.0)


#: epoch seconds of each ``YYYY-MM-DDTHH:MM`` seen (strptime is slow; streams repeat minutes)
_MINUTES: dict[str, float] = {}


def format_rfc3339(epoch: float) -> str:
    """Epoch seconds as Kraken's RFC 3339 text with microseconds: ``2026-07-07T23:00:03.947173Z``."""
    micros = round(epoch * 1_000_000)
    dt = datetime.fromtimestamp(micros // 1_000_000, tz=timezone.utc)
    return f"{dt:%Y-%m-%dT%H:%M:%S}.{micros % 1_000_000:06d}Z"


def exchange_time(msg: Any) -> float | None:
    """The latest exchange timestamp a frame carries (epoch seconds), or ``None`` (heartbeats, status)."""
    api = detect_api(msg)
    try:
        if api == "v2":
            return _v2_time(msg)
        if api == "v1" and isinstance(msg, list):
            return _v1_time(msg)
    except (ValueError, TypeError, IndexError, KeyError):
        return None
    return None


def _v2_time(msg: Mapping[str, Any]) -> float | None:
    stamps: list[str] = []
    if isinstance(msg.get("timestamp"), str):
        stamps.append(msg["timestamp"])
    if msg.get("channel") != "ohlc":  # an ohlc item's timestamp is its interval, not the event time
        for item in msg.get("data") or ():
            if isinstance(item, Mapping) and isinstance(item.get("timestamp"), str):
                stamps.append(item["timestamp"])
    for key in ("time_out", "time_in"):
        if not stamps and isinstance(msg.get(key), str):
            stamps.append(msg[key])
    return max(parse_rfc3339(s) for s in stamps) if stamps else None


def _v1_time(msg: list[Any]) -> float | None:
    base = msg[-2].split("-", 1)[0]
    stamps: list[Any] = []
    for payload in msg[1:-2]:
        if base == "book" and isinstance(payload, Mapping):
            for key in ("as", "bs", "a", "b"):
                stamps.extend(lv[2] for lv in payload.get(key) or () if len(lv) > 2)
        elif base == "trade":
            stamps.extend(tr[2] for tr in payload)
        elif base == "ohlc":
            stamps.append(payload[0])
        elif base == "spread":
            stamps.append(payload[2])
    return max(float(s) for s in stamps) if stamps else None


# -- exact JSON -----------------------------------------------------------------------


def dumps_exact(value: Any) -> str:
    """Compact JSON (Kraken's own layout) with each :class:`Decimal` written as its token.

    ``json.dumps`` cannot emit a Decimal as a bare number and a float would lose
    trailing zeros (``0.00005100`` -> ``5.1e-05``).
    """
    out: list[str] = []
    _write(value, out)
    return "".join(out)


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        out.append(format(value, "f"))
    elif isinstance(value, Mapping):
        out.append("{")
        first = True
        for key, item in value.items():
            if not first:
                out.append(",")
            first = False
            out.append(json.dumps(str(key), ensure_ascii=False))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value, ensure_ascii=False))


def _short(msg: Any, limit: int = 80) -> str:
    text = repr(msg)
    return text if len(text) <= limit else text[: limit - 3] + "..."
