"""``/v1/marks``: the prices positions are valued at (from fills, or set here by risk-officer/admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import AfterValidator

from sandbox.services.kit.errors import ServiceError
from sandbox.services.risk import store_positions
from sandbox.services.risk.models import PATH_SYMBOL_PATTERN, MarkList, MarkPublic, MarkUpdate, path_symbol
from sandbox.services.risk.roles import READERS, Writer
from sandbox.services.risk.runtime import Risk
from sandbox.services.risk.views import mark_public

router = APIRouter(prefix="/v1/marks", tags=["marks"])

SymbolPath = Annotated[
    str,
    Path(pattern=PATH_SYMBOL_PATTERN, max_length=33, description="BASE/QUOTE (raw slash) or BASE-QUOTE, e.g. XBT/USD."),
    AfterValidator(path_symbol),
]


@router.get("", dependencies=[READERS], summary="List marks")
async def list_marks(risk: Risk) -> MarkList:
    """Every mark."""
    items = [mark_public(m) for _, m in sorted(risk.state.marks.items())]
    return MarkList(items=items, count=len(items))


@router.get("/{symbol:path}", dependencies=[READERS], summary="A symbol's mark")
async def get_mark(symbol: SymbolPath, risk: Risk) -> MarkPublic:
    """404 ``mark_not_found`` when no fill or PUT has priced the symbol."""
    found = risk.state.marks.get(symbol)
    if found is None:
        raise ServiceError(404, "mark_not_found", f"no mark for {symbol}")
    return mark_public(found)


@router.put("/{symbol:path}", summary="Set a symbol's mark (risk-officer)")
async def put_mark(symbol: SymbolPath, body: MarkUpdate, risk: Risk, who: Writer) -> MarkPublic:
    """The mark from now on (until a later fill or PUT); audited."""
    mark = await store_positions.put_mark(risk.pools["diversification"], who, symbol, body.price)
    risk.state.merge_marks([mark])
    return mark_public(mark)
