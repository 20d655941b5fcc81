"""Reading the venue's reports, the instrument catalogue, balance comparison, check answers, order models."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from sandbox.services.oms.capital import reservation_amount
from sandbox.services.oms.checks import violations_of
from sandbox.services.oms.instruments import InstrumentCatalog, asset_display, canonical_asset
from sandbox.services.oms.models import OrderCreate, plain
from sandbox.services.oms.reconcile import compare_balances
from sandbox.services.oms.store import OrderRecord
from sandbox.services.oms.upstream import Reply
from sandbox.services.oms.venue_reports import (
    ReportError,
    adopted_order,
    rest_fill,
    rfc3339_time,
    venue_order,
    ws_fill,
)

D = Decimal
ASSETPAIRS = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"


@pytest.fixture(scope="module")
def catalog() -> InstrumentCatalog:
    return InstrumentCatalog.from_assetpairs(json.loads(ASSETPAIRS.read_text(), parse_float=Decimal))


def order(**kw: object) -> OrderRecord:
    base = dict(id="7c0a3f0e-0000-4000-8000-000000000001", account="acct-1", client_order_id="c1", symbol="XBT/USD",
                pair="XXBTZUSD", side="buy", type="limit", qty=D("1"), price=D("30000"), created_by="t")
    base.update(kw)
    return OrderRecord(**base)  # type: ignore[arg-type]


def test_the_catalogue_finds_a_pair_by_every_name(catalog: InstrumentCatalog) -> None:
    names = ["XBT/USD", "xbtusd", "XXBTZUSD", "BTC/USD", "btc-usd", "BTCUSD", "XBT-USD"]
    assert {catalog.find(n).key for n in names} == {"XXBTZUSD"}  # type: ignore[union-attr]
    inst = catalog.find("XBT/USD")
    assert inst is not None
    assert (inst.symbol, inst.v2_symbol, inst.base, inst.quote, inst.base_name) == (
        "XBT/USD", "BTC/USD", "XXBT", "ZUSD", "XBT")
    assert catalog.find("NOPE/USD") is None
    assert "ZUSD" in catalog.assets()


def test_asset_names() -> None:
    assert [asset_display(a) for a in ("ZUSD", "XXBT", "SOL", "XETH")] == ["USD", "XBT", "SOL", "ETH"]
    assert canonical_asset("BTC") == canonical_asset("XXBT") == canonical_asset("XBT") == "XBT"


def test_a_rest_order_report(catalog: InstrumentCatalog) -> None:
    info = {"refid": None, "userref": 42, "cl_ord_id": "abc", "status": "canceled", "reason": "User requested",
            "opentm": D("1688666559.8974"), "descr": {"pair": "XBTUSD", "type": "sell", "ordertype": "limit",
            "price": "30010.0"}, "vol": "1.25000000", "vol_exec": "0.25000000", "cost": "7502.50000",
            "fee": "19.50650", "oflags": "fciq,post", "trades": ["T1", "T2"]}
    report = venue_order("OTX-1", info)
    assert (report.status, report.vol, report.vol_exec, report.side, report.price) == (
        "canceled", D("1.25"), D("0.25"), "sell", D("30010.0"))
    assert report.userref == 42 and report.cl_ord_id == "abc" and report.post_only and report.trades == ("T1", "T2")
    assert report.state == "canceled"
    adopted = adopted_order(report, catalog, order_id="id-1", account="venue")
    assert (adopted.symbol, adopted.pair, adopted.qty, adopted.source, adopted.txid) == (
        "XBT/USD", "XXBTZUSD", D("1.25"), "adopted", "OTX-1")
    with pytest.raises(ReportError):
        adopted_order(venue_order("O2", {**info, "descr": {**info["descr"], "pair": "NOPE"}}), catalog,
                      order_id="x", account="venue")


def test_rest_and_websocket_fills_read_the_same(catalog: InstrumentCatalog) -> None:
    inst = catalog.find("XBT/USD")
    assert inst is not None
    rest = rest_fill("TX1", {"ordertxid": "O1", "pair": "XXBTZUSD", "time": D("1700000000.1234"), "type": "buy",
                             "price": "30000.00000", "cost": "15000.00000", "fee": "39.00000", "vol": "0.50000000",
                             "maker": False}, order(), inst, source="reconcile")
    ws = ws_fill({"exec_type": "trade", "exec_id": "TX1", "order_id": "O1", "last_qty": D("0.5"),
                  "last_price": D("30000.0"), "cost": D("15000.0"), "liquidity_ind": "t",
                  "fees": [{"asset": "USD", "qty": D("39.0")}], "timestamp": "2023-11-14T22:13:20.123400Z",
                  "side": "buy"}, order(), inst)
    for f in (rest, ws):
        assert (f.fill_id, f.qty, f.price, f.cost, f.fee, f.fee_currency, f.fee_asset, f.liquidity) == (
            "TX1", D("0.5"), D("30000"), D("15000"), D("39"), "USD", "ZUSD", "taker")
    assert rest.ts == ws.ts == datetime(2023, 11, 14, 22, 13, 20, 123400, tzinfo=timezone.utc)
    maker_in_base = ws_fill({"exec_id": "T2", "last_qty": 1, "last_price": 2, "liquidity_ind": "m",
                             "fees": [{"asset": "BTC", "qty": D("0.001")}], "timestamp": "2024-01-01T00:00:00Z"},
                            order(), inst)
    assert (maker_in_base.liquidity, maker_in_base.fee_asset, maker_in_base.fee_currency) == ("maker", "XXBT", "XBT")
    event = rest.event("c1")
    assert set(event) >= {"fill_id", "order_id", "client_order_id", "account", "strategy", "symbol", "side", "qty",
                          "price", "fee", "fee_currency", "liquidity", "ts"}
    assert event["qty"] == "0.50000000" and event["liquidity"] == "taker"


def test_rfc3339_with_nanoseconds() -> None:
    assert rfc3339_time("2026-07-07T23:00:03.947173123Z").microsecond == 947173
    with pytest.raises(ReportError):
        rfc3339_time("yesterday")


def test_balances_are_compared_at_the_venues_precision() -> None:
    ours = {"ZUSD": D("1000.00001"), "XXBT": D("0.5"), "SOL": D("3")}
    venue = {"ZUSD": D("1000.0000"), "XXBT": D("0.4999999999"), "XETH": D("1")}
    assert compare_balances(ours, venue) == [
        ("SOL", D("3.0000000000"), D("0E-10")), ("XETH", D("0E-10"), D("1.0000000000")),
        ("XXBT", D("0.5000000000"), D("0.4999999999"))]


def test_check_answers_become_reasons_with_the_services_codes() -> None:
    refused = Reply(200, {"allowed": False, "violations": [
        {"code": "qty_below_ordermin", "message": "too small", "field": "qty", "limit": "0.0001"}]})
    assert violations_of("policy", refused) == [{"code": "qty_below_ordermin", "message": "too small",
                                                "source": "policy", "detail": {"field": "qty", "limit": "0.0001"}}]
    assert violations_of("risk", Reply(200, {"allowed": True, "violations": []})) == []
    assert violations_of("risk", Reply(422, {"error": "validation_error", "message": "bad"}))[0]["code"] == \
        "validation_error"
    assert violations_of("policy", Reply(403, {"error": "forbidden"}))[0]["code"] == "policy_unavailable"


def test_reservation_amount_rounds_up_to_eight_places() -> None:
    assert reservation_amount(D("0.123456789"), None) == D("0.12345679")
    assert reservation_amount(D("100"), D("0.26")) == D("100.26")


def test_order_model_rules() -> None:
    ok = OrderCreate.model_validate({"account": "acct-1", "client_order_id": "c-1", "symbol": "XBT/USD", "side": "buy",
                                     "type": "limit", "qty": D("0.1"), "price": "30000.1"})
    assert ok.price == D("30000.1") and ok.post_only is False
    bad = [
        {"type": "limit"},  # no price
        {"type": "market", "price": "1"},
        {"type": "market", "post_only": True},
        {"type": "limit", "price": "1", "qty": "0"},
        {"type": "limit", "price": "1", "qty": "1e20"},
        {"type": "limit", "price": "1", "qty": "0.0000000000000000001"},
        {"type": "limit", "price": "1", "post_only": "yes"},
        {"type": "limit", "price": "1", "userref": 2**31},
        {"type": "limit", "price": "1", "surprise": 1},
        {"type": "limit", "price": "1", "account": "bad account"},
        {"type": "limit", "price": "1", "client_order_id": "x" * 65},
        {"type": "limit", "price": "NaN"},
    ]
    base = {"account": "acct-1", "client_order_id": "c-1", "symbol": "XBT/USD", "side": "buy", "qty": "1"}
    for extra in bad:
        with pytest.raises(ValidationError):
            OrderCreate.model_validate({**base, **extra})


def test_plain_decimals() -> None:
    assert [plain(D(x)) for x in ("1.500", "0", "1E+3", "0.00000001")] == ["1.5", "0", "1000", "0.00000001"]
