"""The Kraken WebSocket requests the ingest sends and the acknowledgements it reads (v2 and v1).

v2: ``{"method": "subscribe", "params": {"channel": "book", "symbol": [...], "depth": 10}}``,
acknowledged per symbol by ``{"method": "subscribe", "result": {"channel", "symbol", ...}, "success": true}``.
v1: ``{"event": "subscribe", "pair": [...], "subscription": {"name": "book", "depth": 10}}``,
acknowledged per pair by ``{"event": "subscriptionStatus", "status": "subscribed", "pair", "subscription"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: ohlc needs an interval; the ingest subscribes one-minute candles.
OHLC_INTERVAL = 1


def subscribe(api: str, channel: str, symbols: Sequence[str], *, depth: int, req_id: int, unsubscribe: bool = False) -> str:
    """The JSON text of a (un)subscribe request for ``channel`` and ``symbols``."""
    if api == "v2":
        params: dict[str, Any] = {"channel": channel, "symbol": list(symbols)}
        if channel == "book":
            params["depth"] = depth
            if not unsubscribe:
                params["snapshot"] = True
        elif channel == "trade" and not unsubscribe:
            params["snapshot"] = False  # no replay of past trades: they would repeat ids already seen
        elif channel == "ohlc":
            params["interval"] = OHLC_INTERVAL
        return json.dumps({"method": "unsubscribe" if unsubscribe else "subscribe", "params": params, "req_id": req_id})
    sub: dict[str, Any] = {"name": channel}
    if channel == "book":
        sub["depth"] = depth
    elif channel == "ohlc":
        sub["interval"] = OHLC_INTERVAL
    return json.dumps({"event": "unsubscribe" if unsubscribe else "subscribe", "pair": list(symbols), "subscription": sub, "reqid": req_id})


@dataclass(frozen=True, slots=True)
class Ack:
    """An answer to a (un)subscribe request for one channel and symbol."""

    #: ``subscribed``, ``unsubscribed`` or ``error``
    status: str
    channel: str | None
    symbol: str | None
    error: str | None = None


def ack_of(msg: Any) -> Ack | None:
    """The acknowledgement ``msg`` carries, or ``None`` for any other frame."""
    if not isinstance(msg, Mapping):
        return None
    method = msg.get("method")
    if method in ("subscribe", "unsubscribe"):
        result = msg.get("result") if isinstance(msg.get("result"), Mapping) else {}
        channel = result.get("channel")
        symbol = result.get("symbol", msg.get("symbol"))
        if not msg.get("success"):
            return Ack("error", channel, symbol, str(msg.get("error") or "refused"))
        return Ack("subscribed" if method == "subscribe" else "unsubscribed", channel, symbol)
    if msg.get("event") == "subscriptionStatus":
        sub = msg.get("subscription") if isinstance(msg.get("subscription"), Mapping) else {}
        status = msg.get("status")
        if status == "error":
            return Ack("error", sub.get("name"), msg.get("pair"), str(msg.get("errorMessage") or "refused"))
        if status in ("subscribed", "unsubscribed"):
            return Ack(status, sub.get("name"), msg.get("pair"))
    if method == "error" or msg.get("event") == "error":
        return Ack("error", None, None, str(msg.get("error") or msg.get("errorMessage") or msg))
    return None
