"""The simulated Kraken venue.

It stands in for ``api.kraken.com`` and ``ws.kraken.com``: nothing in the
sandbox reaches the real exchange.  :mod:`sandbox.venue.public_rest` serves the
public REST market-data endpoints (``/0/public/AssetPairs``, ``SystemStatus``,
``Time``) from a fixture in Kraken's exact response format; the WebSocket feed
and the signed private trading endpoints are added beside it.
"""

from __future__ import annotations

from typing import Any

_PUBLIC_REST = ("AssetPairsCatalog", "UnknownAssetPair", "create_public_app", "dumps_exact", "public_router")

__all__ = list(_PUBLIC_REST)


def __getattr__(name: str) -> Any:
    """Lazy re-exports: importing another venue module (e.g. the WebSocket side) does not load FastAPI."""
    if name in _PUBLIC_REST:
        from sandbox.venue import public_rest

        return getattr(public_rest, name)
    raise AttributeError(f"module 'sandbox.venue' has no attribute {name!r}")
