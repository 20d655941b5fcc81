"""The fast path of ``POST /v1/orders`` answers exactly as the FastAPI route does (no servers)."""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest
from fastapi.routing import APIRoute

from sandbox.services.kit.hot import HotAnswer
from sandbox.services.oms import routes_orders
from sandbox.services.kit.decimal_json import loads
from sandbox.services.oms.models import OrderCreate
from sandbox.services.oms.orders import Placed
from sandbox.services.oms.runtime import LabelledCounter
from sandbox.services.oms.store import OrderRecord

OID = "7c0a3f0e-0000-4000-8000-000000000001"
AT = datetime(2026, 12, 4, 17, 0, 0, 123456, tzinfo=timezone.utc)


def order(**kw: Any) -> OrderRecord:
    base: dict[str, Any] = dict(id=OID, account="acct-1", client_order_id="c-1", symbol="XBT/USD", pair="XXBTZUSD",
                                side="buy", type="limit", qty=Decimal("0.00100"), price=Decimal("30010.0"),
                                created_by="trader-1", created_at=AT, updated_at=AT)
    base.update(kw)
    return OrderRecord(**base)


ORDERS = [
    order(),
    order(state="new", txid="OABCDE-FGHIJ-KLMNOP", estimated_fee=Decimal("0.0780260")),
    order(state="filled", txid="OT", filled_qty=Decimal("0.001"), filled_cost=Decimal("30.0100"), fees=Decimal("0.078"),
          fee_currency="USD", strategy="s-1", capital_reserved=Decimal("1E+2"), userref=-7, post_only=True),
    order(state="rejected", price=None, type="market", reference_price=Decimal("1e-7"), reasons=[
        {"code": "risk_limit", "message": "notional above the limit", "source": "risk",
         "detail": {"limit": "1000", "actual": Decimal("1500.5")}}]),
]


def fastapi_route() -> APIRoute:
    return next(r for r in routes_orders.router.routes
                if isinstance(r, APIRoute) and r.path == "/v1/orders" and "POST" in r.methods)


@pytest.mark.parametrize("rec", ORDERS, ids=lambda r: r.state)
def test_the_body_is_byte_for_byte_what_the_response_model_gives(rec: OrderRecord) -> None:
    field = fastapi_route().response_field
    assert field is not None
    value, errors = field.validate(rec.public(), {}, loc=("response",))
    assert not errors
    assert routes_orders.order_json(rec.public()) == field.serialize_json(value)


def test_status_and_headers_of_each_outcome() -> None:
    created = routes_orders.placed_answer(Placed(order(state="new"), True))
    assert (created.status, created.headers) == (201, ((b"location", f"/v1/orders/{OID}".encode()),))
    pending = routes_orders.placed_answer(Placed(order(state="pending_new"), True))
    assert pending.status == 202
    replay = routes_orders.placed_answer(Placed(order(state="filled"), False))
    assert replay.status == 200
    assert dict(replay.headers) == {b"idempotent-replay": b"true", b"location": f"/v1/orders/{OID}".encode()}
    doc = loads(replay.body)
    assert (doc["id"], doc["state"], doc["qty"], doc["price"]) == (OID, "filled", "0.001", "30010")
    assert isinstance(created, HotAnswer)


def test_the_fast_path_takes_what_the_route_takes() -> None:
    hot, route = routes_orders.HOT, fastapi_route()
    assert (hot.method, hot.path) == ("POST", route.path)
    assert hot.body is OrderCreate and hot.decimal, "the body parses like DecimalRoute and validates the same model"
    assert set(hot.roles) == {"trader", "service"}


def test_labelled_counter_children_are_prometheus_children() -> None:
    from prometheus_client import CollectorRegistry, Counter

    counter = Counter("t_total", "test", ["outcome"], registry=CollectorRegistry())
    cached = LabelledCounter(counter)
    cached.labels("new").inc()
    cached.labels("new").inc()
    cached.labels("rejected").inc()
    assert cached.labels("new") is counter.labels("new")
    assert counter.labels("new")._value.get() == 2
    assert counter.labels("rejected")._value.get() == 1
