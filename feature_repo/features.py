"""Feast definitions of the Aether feature repository: entities and feature views.

Imported by Feast only (inside the Feast virtualenv, never by the sandbox
package).  Every view reads a Parquet file that ``pipeline.py`` exports from the
mirrored market data and the OMS database; the computations are defined in
docs/feast.md and implemented in ``pipeline.py``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

#: Where pipeline.py writes the exported feature rows (one Parquet file per view).
DATA_DIR = Path(os.environ.get("AETHER_FEATURES_DATA") or Path(__file__).resolve().parent / "data")

#: Replayed sessions carry old timestamps: values never expire by age.
NO_EXPIRY = timedelta(days=36500)

symbol = Entity(name="symbol", join_keys=["symbol"], value_type=ValueType.STRING,
                description="A Kraken pair in BASE/QUOTE form, e.g. BTC/USD.")
account = Entity(name="account", join_keys=["account"], value_type=ValueType.STRING,
                 description="An OMS trading account.")


def _source(view: str) -> FileSource:
    return FileSource(name=f"{view}_source", path=str(DATA_DIR / f"{view}.parquet"), timestamp_field="event_timestamp")


symbol_quote = FeatureView(
    name="symbol_quote",
    entities=[symbol],
    ttl=NO_EXPIRY,
    schema=[
        Field(name="mid_price", dtype=Float64, description="(best bid + best ask) / 2 of the latest top of book."),
        Field(name="spread", dtype=Float64, description="best ask - best bid of the latest top of book."),
        Field(name="spread_bps", dtype=Float64, description="spread / mid_price * 10 000."),
    ],
    source=_source("symbol_quote"),
    online=True,
    description="Latest top of book per symbol (market_top_of_book).",
)

symbol_volatility_1m = FeatureView(
    name="symbol_volatility_1m",
    entities=[symbol],
    ttl=NO_EXPIRY,
    schema=[
        Field(name="realised_vol_1m", dtype=Float64,
              description="sqrt(sum of squared log returns between consecutive trades) over the last 60 s."),
        Field(name="returns_1m", dtype=Int64, description="Number of returns the volatility is computed from."),
    ],
    source=_source("symbol_volatility_1m"),
    online=True,
    description="1-minute realised volatility per symbol (market_trades), as of the symbol's latest trade.",
)

symbol_volume_5m = FeatureView(
    name="symbol_volume_5m",
    entities=[symbol],
    ttl=NO_EXPIRY,
    schema=[
        Field(name="volume_5m", dtype=Float64, description="Sum of traded quantity over the last 300 s."),
        Field(name="notional_5m", dtype=Float64, description="Sum of price * quantity over the last 300 s."),
        Field(name="trade_count_5m", dtype=Int64, description="Number of trades over the last 300 s."),
    ],
    source=_source("symbol_volume_5m"),
    online=True,
    description="5-minute traded volume per symbol (market_trades), as of the symbol's latest trade.",
)

account_exposure = FeatureView(
    name="account_exposure",
    entities=[account],
    ttl=NO_EXPIRY,
    schema=[
        Field(name="gross_exposure", dtype=Float64, description="sum |qty| * avg_price over the account's positions."),
        Field(name="net_exposure", dtype=Float64, description="sum qty * avg_price over the account's positions."),
        Field(name="open_positions", dtype=Int64, description="Number of positions with qty != 0."),
    ],
    source=_source("account_exposure"),
    online=True,
    description="Account exposure at cost from the OMS positions table.",
)

ENTITIES = [symbol, account]
FEATURE_VIEWS = [symbol_quote, symbol_volatility_1m, symbol_volume_5m, account_exposure]
