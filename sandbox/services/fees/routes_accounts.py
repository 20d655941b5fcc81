"""``GET /v1/accounts/{account}/volume``: 30-day volume and the current tier per instrument."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sandbox.services.fees.models import (
    ACCOUNT_PATTERN,
    SYMBOL_PATTERN,
    InstrumentTiers,
    VolumePublic,
    tier_public,
)
from sandbox.services.fees.runtime import Fees
from sandbox.services.kit.auth import require_roles

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


@router.get(
    "/{account}/volume",
    dependencies=[require_roles("trader", "risk-officer", "viewer", "service")],
    summary="30-day volume and current tiers",
    responses={404: {"description": "A requested symbol has no schedule"}},
)
async def get_volume(
    account: Annotated[str, Path(pattern=ACCOUNT_PATTERN, max_length=64)],
    fees: Fees,
    symbol: Annotated[
        list[Annotated[str, Query(pattern=SYMBOL_PATTERN, max_length=49)]] | None,
        Query(max_length=50, description="Only these instruments (fetched from universe-service if needed)."),
    ] = None,
) -> VolumePublic:
    """The account's USD volume over the window and, per instrument, the maker and taker tier it selects.

    Without ``symbol`` every schedule this replica holds is listed.
    """
    volume = await fees.volume(account)
    if symbol:
        schedules = [await fees.schedule(s.upper()) for s in dict.fromkeys(symbol)]
    else:
        schedules = fees.schedules.all()
    instruments = [
        InstrumentTiers(
            symbol=s.symbol,
            taker=tier_public(s.choose("taker", volume.volume_usd), volume.volume_usd),
            maker=tier_public(s.choose("maker", volume.volume_usd), volume.volume_usd),
        )
        for s in schedules
    ]
    return VolumePublic(
        account=account,
        window_days=fees.settings.volume_window_days,
        volume_usd=volume.volume_usd,
        fill_count=volume.fill_count,
        unpriced=volume.unpriced,
        as_of=volume.as_of,
        instruments=instruments,
    )
