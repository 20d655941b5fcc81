"""``/v1/market-caps``: market capitalisation per asset, fed by the coingecko-import workflow."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from sandbox.services.kit.auth import Principal, require_roles
from sandbox.services.universe.state import Universe

router = APIRouter(prefix="/v1/market-caps", tags=["market-caps"])

#: PostgreSQL text cannot hold NUL: refused at validation (422), not at insert (500).
_TEXT = r"^[^\x00]+$"

Writer = Annotated[Principal, Depends(require_roles("service"))]
Reader = Annotated[Principal, Depends(require_roles("risk-officer", "viewer", "trader", "service"))]


class MarketCap(BaseModel):
    """One asset's market capitalisation at ``as_of``."""

    asset: str = Field(min_length=1, max_length=32, pattern=_TEXT, description="Asset code, upper case (BTC)")
    coin_id: str | None = Field(default=None, max_length=128, pattern=_TEXT, description="The data source's coin id (bitcoin)")
    market_cap: Decimal = Field(ge=0, allow_inf_nan=False)
    rank: int | None = Field(default=None, ge=1, le=2_147_483_647)
    vs_currency: str = Field(default="usd", min_length=1, max_length=16, pattern=_TEXT)
    as_of: datetime


class MarketCapUpdate(BaseModel):
    """A batch of market caps from one source (each asset's row is replaced)."""

    source: str = Field(min_length=1, max_length=64, pattern=_TEXT)
    items: list[MarketCap] = Field(max_length=10_000)


class MarketCapPublic(MarketCap):
    """A stored market cap."""

    source: str
    updated_at: datetime


class MarketCapList(BaseModel):
    """Market caps, largest first."""

    items: list[MarketCapPublic]


_UPSERT = """
INSERT INTO market_caps (asset, coin_id, market_cap, rank, vs_currency, as_of, source, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, now())
ON CONFLICT (asset) DO UPDATE SET coin_id = EXCLUDED.coin_id, market_cap = EXCLUDED.market_cap, rank = EXCLUDED.rank,
    vs_currency = EXCLUDED.vs_currency, as_of = EXCLUDED.as_of, source = EXCLUDED.source, updated_at = now()
"""


@router.put("", summary="Replace market caps per asset (service accounts, admin)")
async def put_market_caps(body: MarketCapUpdate, universe: Universe, _who: Writer) -> dict[str, int]:
    """Upsert one row per asset; returns how many were written."""
    rows = [(i.asset.upper(), i.coin_id, i.market_cap, i.rank, i.vs_currency, i.as_of, body.source) for i in body.items]
    async with universe.catalog.pool.acquire() as conn:
        await conn.executemany(_UPSERT, rows)
    return {"upserted": len(rows)}


@router.get("", response_model=MarketCapList, summary="Market caps, largest first")
async def get_market_caps(universe: Universe, _who: Reader) -> MarketCapList:
    """Every asset's latest market cap."""
    async with universe.catalog.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT asset, coin_id, market_cap, rank, vs_currency, as_of, source, updated_at FROM market_caps "
            "ORDER BY market_cap DESC, asset"
        )
    return MarketCapList.model_validate({"items": [dict(r) for r in rows]})
