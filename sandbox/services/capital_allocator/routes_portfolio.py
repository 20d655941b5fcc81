"""``/v1/portfolio``: the NAV, the cash buffer and the allocation precision."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from sandbox.services.capital_allocator import repository
from sandbox.services.capital_allocator.models import PortfolioPublic, PortfolioWrite
from sandbox.services.capital_allocator.state import Allocator, get_sync
from sandbox.services.kit.auth import CurrentPrincipal, Principal, require_roles
from sandbox.services.kit.errors import ServiceError

router = APIRouter(prefix="/v1/portfolio", tags=["portfolio"])

Writer = Annotated[Principal, Depends(require_roles("risk-officer"))]


@router.get("", response_model=PortfolioPublic, summary="The portfolio (any role)",
            responses={404: {"description": "No NAV set yet"}})
async def get_portfolio(state: Allocator, _who: CurrentPrincipal) -> PortfolioPublic:
    """NAV, cash buffer, currency, precision and the allocatable capital they give."""
    portfolio = state.cache.portfolio
    if portfolio is None:
        raise ServiceError(404, "nav_not_set", "no portfolio NAV is set yet")
    return portfolio.public()


@router.put("", response_model=PortfolioPublic, summary="Set the NAV and cash buffer (admin, risk-officer)")
async def put_portfolio(body: PortfolioWrite, state: Allocator, who: Writer) -> PortfolioPublic:
    """Replace the portfolio settings; allocations change at the next rebalance, allocate or release."""
    portfolio = await repository.put_portfolio(state.pool, body, who.subject)
    await get_sync(state).reload("local")
    return portfolio.public()
