"""The venue's trading side: Kraken's private REST API, matching, the executions channel, faults.

* :mod:`.signing` - ``API-Sign`` (``sign``, ``verify``, ``signed_request``), shared with the OMS client;
* :mod:`.accounts` - API keys with per-key nonces, balances with holds, 30-day volume and fee tiers;
* :mod:`.engine` - matching against the replayed or a synthetic book, with queue position;
* :mod:`.private_api` / :mod:`.rest` - ``/0/private/*`` with Kraken's errors and envelope;
* :mod:`.executions_ws` - the WebSocket v2 ``executions`` channel;
* :mod:`.faults`, :mod:`.ratelimit` - scripted faults, Kraken's rate counters;
* :mod:`.admin` - ``/admin/*`` for scenarios (loopback only);
* :mod:`.venue` - :class:`TradingVenue`, which ties them together; :mod:`.app` - wiring.

See ``docs/venue-trading.md``.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "TradingVenue": "sandbox.venue.trading.venue",
    "create_trading_app": "sandbox.venue.trading.app",
    "trading_routers": "sandbox.venue.trading.app",
    "ExecutionsWsServer": "sandbox.venue.trading.executions_ws",
    "websockets_handler": "sandbox.venue.trading.executions_ws",
    "PRIVATE_WS_PATH": "sandbox.venue.trading.executions_ws",
    "sign": "sandbox.venue.trading.signing",
    "verify": "sandbox.venue.trading.signing",
    "signed_request": "sandbox.venue.trading.signing",
    "KrakenError": "sandbox.venue.trading.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy exports: ``from sandbox.venue.trading.signing import sign`` stays free of FastAPI."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sandbox.venue.trading' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
