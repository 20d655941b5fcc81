"""``/v1/orders``: place, read, list and cancel orders.

Writes: trader, service (admin passes every check). Reads: also viewer and risk-officer.

``POST /v1/orders`` also has a fast path (:data:`HOT`, see :mod:`sandbox.services.kit.hot`):
with a valid token of a writer and a valid JSON body it is answered without FastAPI's
routing, dependency tree and response re-validation, which cost about 15% of the
OMS's CPU per order. Anything else (errors included) is answered by :func:`place_order`.
Both paths place through :meth:`OrderService.place` and answer with the same status,
headers and body (:func:`placed_answer`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import TypeAdapter

from sandbox.services.kit.auth import Principal, require_roles
from sandbox.services.kit.decimal_json import DecimalRoute
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.hot import FALLBACK, HotAnswer, HotCall, HotRoute
from sandbox.services.oms import store
from sandbox.services.oms.models import (
    ACCOUNT_PATTERN,
    ORDER_ID_PATTERN,
    STRATEGY_PATTERN,
    SYMBOL_PATTERN,
    FillList,
    OrderCreate,
    OrderList,
    OrderPublic,
    StateName,
)
from sandbox.services.oms.orders import Placed
from sandbox.services.oms.runtime import Oms, OmsRuntime

router = APIRouter(prefix="/v1/orders", tags=["orders"], route_class=DecimalRoute)

WRITERS = ("trader", "service")
Trader = Annotated[Principal, Depends(require_roles(*WRITERS))]
Reader = Annotated[Principal, Depends(require_roles("trader", "service", "viewer", "risk-officer"))]
OrderId = Annotated[str, Path(pattern=ORDER_ID_PATTERN, description="The OMS order id (a UUID).")]
_ERRORS = {404: {"description": "order_not_found"}}


@router.post("", response_model=OrderPublic, status_code=201, summary="Place an order (trader, service)",
             responses={200: {"model": OrderPublic, "description": "Repeated client_order_id: the original order"},
                        202: {"model": OrderPublic, "description": "Sent; the venue's answer was lost and is being "
                                                                   "resolved (state pending_new)"},
                        409: {"description": "duplicate_in_flight"},
                        503: {"description": "instruments_unavailable"}})
async def place_order(body: OrderCreate, oms: Oms, who: Trader) -> Response:
    """Checks, capital, venue. Rejected orders are created too (state ``rejected`` with ``reasons``)."""
    answer = await _place(oms, body, who)
    # Serialised by placed_answer, exactly as the response model would (see order_json).
    return Response(answer.body, status_code=answer.status, headers={
        name.decode("latin-1"): value.decode("latin-1") for name, value in answer.headers},
        media_type="application/json")


#: ``OrderPublic`` as FastAPI's response field validates and serialises it.
_ORDER_PUBLIC = TypeAdapter(OrderPublic)


def order_json(doc: dict[str, Any]) -> bytes:
    """An ``OrderPublic`` document as JSON, byte for byte what ``response_model=OrderPublic`` gives."""
    return _ORDER_PUBLIC.dump_json(_ORDER_PUBLIC.validate_python(doc, from_attributes=True), by_alias=True)


def placed_answer(placed: Placed) -> HotAnswer:
    """Status, headers and body of a placement: 201 created, 202 still ``pending_new``,
    200 with ``Idempotent-Replay: true`` for a repeated client order id."""
    order = placed.order
    headers: tuple[tuple[bytes, bytes], ...] = ((b"location", f"/v1/orders/{order.id}".encode()),)
    if not placed.created:
        status = 200
        headers = ((b"idempotent-replay", b"true"), *headers)
    else:
        status = 202 if order.state == "pending_new" else 201
    return HotAnswer(order_json(order.public()), status, headers)


async def _place(oms: OmsRuntime, body: OrderCreate, who: Principal) -> HotAnswer:
    return placed_answer(await oms.orders.place(body, who))


async def _place_hot(call: HotCall) -> Any:
    """:func:`place_order` on the kit's fast path (token, role and body already checked)."""
    oms: OmsRuntime | None = getattr(call.state, "oms", None)
    if oms is None:
        return FALLBACK  # starting: FastAPI answers the 503
    return await _place(oms, call.body, call.principal)


#: The fast path of ``POST /v1/orders``.
HOT = HotRoute("POST", "/v1/orders", _place_hot, roles=WRITERS, body=OrderCreate, decimal=True)


@router.get("", response_model=OrderList, summary="List orders, newest first (trader, service, viewer, risk-officer)")
async def list_orders(
    oms: Oms, _who: Reader,
    account: Annotated[str | None, Query(pattern=ACCOUNT_PATTERN, max_length=64)] = None,
    state: Annotated[StateName | None, Query()] = None,
    strategy: Annotated[str | None, Query(pattern=STRATEGY_PATTERN, max_length=64)] = None,
    symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN, max_length=32)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[str | None, Query(pattern=ORDER_ID_PATTERN, description="Continue after this order id.")] = None,
) -> dict[str, Any]:
    """Filter by account, state, strategy and symbol; page with ``before`` = the last id of the previous page."""
    cursor = None
    if before is not None:
        cursor = await store.get_order(oms.pool, before)
        if cursor is None:
            raise ServiceError(400, "invalid_cursor", f"no order {before}")
    if symbol is not None:
        inst = oms.catalog.find(symbol)
        symbol = inst.symbol if inst else symbol.upper()
    items = await store.list_orders(oms.pool, account=account, state=state, strategy=strategy, symbol=symbol,
                                    limit=limit, before=cursor)
    return {"items": [o.public() for o in items], "count": len(items),
            "next_before": items[-1].id if len(items) == limit else None}


@router.get("/{order_id}", response_model=OrderPublic, responses=_ERRORS,
            summary="One order with its state history (trader, service, viewer, risk-officer)")
async def get_order(order_id: OrderId, oms: Oms, _who: Reader) -> dict[str, Any]:
    """The order and every transition (time, reason, detail)."""
    order = await store.get_order(oms.pool, order_id)
    if order is None:
        raise ServiceError(404, "order_not_found", f"no order {order_id}")
    steps = await store.transitions_of(oms.pool, order_id)
    transitions = [{"from_state": t.from_state, "to_state": t.to_state, "reason": t.reason, "at": t.at,
                    "detail": t.detail} for t in steps]
    return order.public(transitions)


@router.get("/{order_id}/fills", response_model=FillList, responses=_ERRORS,
            summary="An order's fills (trader, service, viewer, risk-officer)")
async def get_fills(order_id: OrderId, oms: Oms, _who: Reader) -> FillList:
    """Oldest first."""
    order = await store.get_order(oms.pool, order_id)
    if order is None:
        raise ServiceError(404, "order_not_found", f"no order {order_id}")
    fills = await store.fills_of(oms.pool, order_id)
    items = [{**f.event(order.client_order_id), "cost": f.cost, "qty": f.qty, "price": f.price, "fee": f.fee,
              "ts": f.ts, "source": f.source} for f in fills]
    return FillList.model_validate({"items": items, "count": len(items)})


@router.delete("/{order_id}", response_model=OrderPublic, summary="Cancel an order (trader, service)",
               responses={**_ERRORS, 409: {"description": "order_not_open"}, 503: {"description": "venue_unavailable"}})
async def cancel_order(order_id: OrderId, oms: Oms, who: Trader, response: Response) -> dict[str, Any]:
    """200 with the order ``canceled`` (or ``filled`` when it filled first); 202 while still ``pending_new``."""
    order = await oms.orders.cancel(order_id, who)
    if order.state == "pending_new":
        response.status_code = 202
    return order.public()
