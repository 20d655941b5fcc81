"""The venue's pairs, cached in memory: names, assets and decimals from ``/0/public/AssetPairs``.

The OMS needs them to send ``AddOrder`` (the venue's pair name), to read the
venue's answers (REST names pairs by key, ``XXBTZUSD``; the executions channel
by v2 symbol, ``BTC/USD``) and to keep balances per REST asset code (``ZUSD``).
Orders name instruments by wsname (``XBT/USD``); any spelling is accepted and
stored as the wsname. The catalogue is loaded at start-up and refreshed in the
background; lookups never leave the process.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

log = logging.getLogger("sandbox.services.oms.instruments")

#: Kraken's WebSocket v2 names for legacy asset codes.
V2_NAMES = {"XBT": "BTC", "XDG": "DOGE"}
V1_NAMES = {v: k for k, v in V2_NAMES.items()}


def asset_display(code: str) -> str:
    """A REST asset code without Kraken's legacy prefix: ``ZUSD`` -> ``USD``, ``XXBT`` -> ``XBT``."""
    code = code.upper()
    return code[1:] if len(code) == 4 and code[0] in "XZ" else code


def canonical_asset(name: str) -> str:
    """One spelling per asset for comparisons: ``XXBT``, ``XBT`` and ``BTC`` are all ``XBT``."""
    display = asset_display(name)
    return V1_NAMES.get(display, display)


@dataclass(frozen=True)
class Instrument:
    """One venue pair."""

    key: str
    altname: str
    wsname: str
    base: str
    quote: str
    pair_decimals: int
    lot_decimals: int
    cost_decimals: int
    ordermin: Decimal
    tick_size: Decimal

    @property
    def symbol(self) -> str:
        """The OMS name (the wsname, ``XBT/USD``)."""
        return self.wsname

    @property
    def v2_symbol(self) -> str:
        """The WebSocket v2 name (``BTC/USD``)."""
        base, _, quote = self.wsname.partition("/")
        return f"{V2_NAMES.get(base, base)}/{V2_NAMES.get(quote, quote)}"

    @property
    def base_name(self) -> str:
        """The base asset without prefix (``XBT``)."""
        return asset_display(self.base)

    @property
    def quote_name(self) -> str:
        """The quote asset without prefix (``USD``)."""
        return asset_display(self.quote)

    @classmethod
    def from_entry(cls, key: str, entry: Mapping[str, Any]) -> Instrument:
        """From one ``AssetPairs`` result entry."""
        pair_decimals = int(entry.get("pair_decimals", 5))
        base, quote = str(entry.get("base", "")), str(entry.get("quote", ""))
        wsname = str(entry.get("wsname") or f"{asset_display(base)}/{asset_display(quote)}")
        return cls(
            key=key, altname=str(entry.get("altname", key)), wsname=wsname, base=base, quote=quote,
            pair_decimals=pair_decimals, lot_decimals=int(entry.get("lot_decimals", 8)),
            cost_decimals=int(entry.get("cost_decimals", pair_decimals)),
            ordermin=Decimal(str(entry.get("ordermin", "0"))),
            tick_size=Decimal(str(entry.get("tick_size") or Decimal(1).scaleb(-pair_decimals))),
        )


class InstrumentCatalog:
    """Every pair by every name (case-insensitive), replaced as a whole on refresh."""

    def __init__(self, instruments: Mapping[str, Instrument] | None = None) -> None:
        """``instruments`` maps pair key -> :class:`Instrument`."""
        self.by_key: dict[str, Instrument] = dict(instruments or {})
        self._names: dict[str, Instrument] = {}
        for inst in self.by_key.values():
            names = (inst.key, inst.altname, inst.wsname, inst.v2_symbol, inst.v2_symbol.replace("/", ""),
                     inst.wsname.replace("/", "-"), inst.v2_symbol.replace("/", "-"))
            for name in names:
                self._names.setdefault(name.upper(), inst)

    @classmethod
    def from_assetpairs(cls, doc: Mapping[str, Any]) -> InstrumentCatalog:
        """From a whole ``AssetPairs`` answer (``{"error": [], "result": {...}}``) or its ``result``."""
        result = doc.get("result", doc) if isinstance(doc, Mapping) else {}
        if not isinstance(result, Mapping):
            raise ValueError("AssetPairs result is not an object")
        return cls({k: Instrument.from_entry(k, v) for k, v in result.items() if isinstance(v, Mapping)})

    def __len__(self) -> int:
        return len(self.by_key)

    def find(self, name: str) -> Instrument | None:
        """The instrument called ``name`` (any spelling), or None."""
        return self._names.get(name.strip().upper())

    def assets(self) -> set[str]:
        """Every REST asset code the pairs trade."""
        return {i.base for i in self.by_key.values()} | {i.quote for i in self.by_key.values()}


async def fetch_catalog(pool: Any) -> InstrumentCatalog:
    """``GET /0/public/AssetPairs`` through an :class:`~sandbox.services.oms.http_client.HttpPool`."""
    resp = await pool.request("GET", "/0/public/AssetPairs", timeout=5.0)
    if resp.status != 200:
        raise RuntimeError(f"AssetPairs: HTTP {resp.status}")
    doc = json.loads(resp.body, parse_float=Decimal)
    if doc.get("error"):
        raise RuntimeError(f"AssetPairs: {doc['error']}")
    return InstrumentCatalog.from_assetpairs(doc)
