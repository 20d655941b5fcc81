"""Pairs the generator knows: names in both API versions, precisions, a starting price.

Precisions come from the project's AssetPairs fixture (``fixtures/kraken/assetpairs.json``,
``pair_decimals`` / ``lot_decimals``) where it lists the pair, else from the
table below.  The table's decimals follow Kraken's AssetPairs as of 2025-2026
for the pairs in the conformance corpus (XBT/USD 1, ETH/USD 2, SOL/USD 2,
XRP/USD 5, XDG/USD 7); the other rows and every starting price are
illustrative, chosen to look like Kraken, not copied from it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path

#: ``fixtures/kraken/assetpairs.json`` of the project checkout.
DEFAULT_ASSETPAIRS = Path(__file__).resolve().parents[2] / "fixtures" / "kraken" / "assetpairs.json"

#: v1 (AssetPairs ``wsname``) asset codes that v2 spells differently.
V2_ASSET_NAMES = {"XBT": "BTC", "XDG": "DOGE"}


@dataclass(frozen=True)
class PairSpec:
    """One pair as the generator uses it."""

    #: v2 symbol (``BTC/USD``)
    v2: str
    #: v1 pair / AssetPairs ``wsname`` (``XBT/USD``)
    v1: str
    price_decimals: int
    qty_decimals: int
    #: where the simulated mid starts
    price: Decimal
    #: relative trading activity (BTC busiest)
    activity: float = 1.0

    def name(self, api: str) -> str:
        """The pair's name in ``api``."""
        return self.v2 if api == "v2" else self.v1


def v2_name(wsname: str) -> str:
    """``XBT/USD`` -> ``BTC/USD``; ``XDG/USD`` -> ``DOGE/USD``."""
    return "/".join(V2_ASSET_NAMES.get(part, part) for part in wsname.split("/"))


def _row(v1: str, pdec: int, price: str, activity: float = 1.0, qdec: int = 8) -> PairSpec:
    return PairSpec(v2_name(v1), v1, pdec, qdec, Decimal(price), activity)


#: Built-in pairs, busiest first.
PAIR_TABLE: tuple[PairSpec, ...] = (
    _row("XBT/USD", 1, "63500.0", 4.0),
    _row("ETH/USD", 2, "1775.00", 3.0),
    _row("SOL/USD", 2, "151.20", 2.0),
    _row("XRP/USD", 5, "0.52140", 1.5),
    _row("XDG/USD", 7, "0.1234000", 1.2),
    _row("ADA/USD", 6, "0.352100"),
    _row("DOT/USD", 4, "4.2150"),
    _row("LINK/USD", 5, "13.52100"),
    _row("LTC/USD", 2, "72.35"),
    _row("AVAX/USD", 2, "25.41"),
    _row("POL/USD", 4, "0.4012"),
    _row("ATOM/USD", 4, "6.5210"),
    _row("XLM/USD", 6, "0.101200"),
    _row("UNI/USD", 3, "7.512"),
    _row("BCH/USD", 2, "352.10"),
    _row("TRX/USD", 6, "0.121500"),
    _row("ETC/USD", 3, "20.150"),
    _row("FIL/USD", 3, "4.012"),
    _row("NEAR/USD", 3, "4.521"),
    _row("AAVE/USD", 2, "90.12"),
    _row("ALGO/USD", 5, "0.15120"),
    _row("XTZ/USD", 4, "0.7021"),
    _row("ETH/XBT", 5, "0.02795"),
    _row("XBT/EUR", 1, "58210.0", 1.5),
    _row("ETH/EUR", 2, "1628.40"),
)


def load_pairs(assetpairs: Path | None = DEFAULT_ASSETPAIRS) -> dict[str, PairSpec]:
    """Every known pair keyed by both its v1 and v2 name, precisions from ``assetpairs`` where listed."""
    overrides: dict[str, tuple[int, int]] = {}
    if assetpairs is not None and assetpairs.is_file():
        result = json.loads(assetpairs.read_text(encoding="utf-8")).get("result") or {}
        for info in result.values():
            if isinstance(info, dict) and info.get("wsname"):
                overrides[info["wsname"]] = (int(info["pair_decimals"]), int(info["lot_decimals"]))
    pairs: dict[str, PairSpec] = {}
    for spec in PAIR_TABLE:
        if spec.v1 in overrides:
            pdec, qdec = overrides[spec.v1]
            price = spec.price.quantize(Decimal(1).scaleb(-pdec))
            spec = replace(spec, price_decimals=pdec, qty_decimals=qdec, price=price)
        pairs[spec.v1] = pairs[spec.v2] = spec
    return pairs
