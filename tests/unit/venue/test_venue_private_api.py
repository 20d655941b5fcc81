"""The private REST API over HTTP (ASGI, no server): authentication, Kraken's errors and envelope, each method."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from sandbox.venue.trading.app import create_trading_app
from sandbox.venue.trading.signing import sign

D = Decimal


@pytest.fixture
def app(catalog, clock):
    application = create_trading_app(catalog, seed=5, clock=clock)
    venue = application.state.trading
    venue.engine.set_book(venue.pairs.get("XBTUSD"), [("29990.0", "1.0")], [("30010.0", "0.5"), ("30020.0", "2")])
    venue.engine.set_book(venue.pairs.get("SOLUSD"), [("9.00", "50")], [("10.00", "50")])
    return application


@pytest.fixture
def venue(app):
    return app.state.trading


@pytest.fixture
def client(app, venue, app_client):
    account, key = venue.accounts.create(balances={"ZUSD": "100000", "XXBT": "1", "SOL": "10"})
    return app_client(app).signed(key.key, key.secret)


def envelope(resp) -> dict:
    assert resp.status_code == 200 and resp.headers["content-type"] == "application/json"
    doc = json.loads(resp.content, parse_float=D)
    assert set(doc) in ({"error", "result"}, {"error"})
    return doc


def err(resp) -> list[str]:
    doc = envelope(resp)
    assert "result" not in doc, doc
    return doc["error"]


def ok(resp):
    doc = envelope(resp)
    assert doc["error"] == [], doc
    return doc["result"]


# -- authentication ----------------------------------------------------------------------------


def test_every_error_is_http_200_with_krakens_envelope(client) -> None:
    assert err(client.call("NoSuchMethod")) == ["EGeneral:Unknown method"]


def test_unknown_key_is_invalid_key(client) -> None:
    client.api_key = "not-a-key"
    assert err(client.call("Balance")) == ["EAPI:Invalid key"]


def test_a_wrong_signature_is_invalid_signature(client) -> None:
    path, body = "/0/private/Balance", "nonce=1700000000000"
    headers = {"API-Key": client.api_key, "API-Sign": sign(path, "1700000000000", "nonce=1700000000001", client.secret),
               "Content-Type": "application/x-www-form-urlencoded"}
    assert err(client.post(path, body, headers)) == ["EAPI:Invalid signature"]
    headers["API-Sign"] = sign("/0/private/BalanceEx", "1700000000000", body, client.secret)
    assert err(client.post(path, body, headers)) == ["EAPI:Invalid signature"]


def test_a_replayed_or_older_nonce_is_invalid_nonce(client) -> None:
    ok(client.call("Balance", nonce=5000))
    assert err(client.call("Balance", nonce=5000)) == ["EAPI:Invalid nonce"]
    assert err(client.call("Balance", nonce=4999)) == ["EAPI:Invalid nonce"]
    ok(client.call("Balance", nonce=5001))


def test_a_missing_nonce_is_invalid_nonce(client) -> None:
    path = "/0/private/Balance"
    headers = {"API-Key": client.api_key, "API-Sign": sign(path, "", "", client.secret)}
    assert err(client.post(path, "", headers)) == ["EAPI:Invalid nonce"]


def test_nonces_are_per_key(app, venue, client, app_client) -> None:
    account = venue.accounts.get("AA0001")
    second = venue.accounts.add_key(account)
    other = app_client(app).signed(second.key, second.secret)
    ok(client.call("Balance", nonce=9000))
    ok(other.call("Balance", nonce=10))  # its own sequence


def test_a_json_body_is_signed_and_accepted_too(client) -> None:
    path = "/0/private/Balance"
    body = '{"nonce": 1700000000123}'
    headers = {"API-Key": client.api_key, "API-Sign": sign(path, "1700000000123", body, client.secret),
               "Content-Type": "application/json"}
    assert ok(client.post(path, body, headers))["ZUSD"] == "100000.0000"


# -- AddOrder ----------------------------------------------------------------------------------


def test_add_order_answers_descr_and_txid(client) -> None:
    result = ok(client.call("AddOrder", pair="XXBTZUSD", type="buy", ordertype="limit", price="29000.0",
                            volume="1.25", userref=7))
    assert result["descr"] == {"order": "buy 1.25000000 XBTUSD @ limit 29000.0"}
    assert len(result["txid"]) == 1 and result["txid"][0][0] == "O" and len(result["txid"][0]) == 19


def test_validate_only_describes_the_order(client, venue) -> None:
    result = ok(client.call("AddOrder", pair="XBTUSD", type="sell", ordertype="market", volume="0.25",
                            validate="true"))
    assert result == {"descr": {"order": "sell 0.25000000 XBTUSD @ market"}}
    assert not venue.accounts.get("AA0001").orders


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"pair": "SOLUSD", "type": "buy", "ordertype": "limit", "price": "99.00", "volume": "0.01"},
         "EOrder:Order minimum not met"),
        ({"pair": "SOLUSD", "type": "buy", "ordertype": "limit", "price": "1.00", "volume": "0.03"},
         "EOrder:Cost minimum not met"),
        ({"pair": "SOLUSD", "type": "buy", "ordertype": "market", "volume": "0.02"}, "EOrder:Cost minimum not met"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.05", "volume": "0.1"},
         "EOrder:Invalid price:XBTUSD price can only be specified up to 1 decimals."),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.0", "volume": "0.123456789"},
         "EGeneral:Invalid arguments:volume"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "volume": "0.1"}, "EGeneral:Invalid arguments:price"),
        ({"pair": "XBTUSD", "type": "hold", "ordertype": "limit", "price": "1.0", "volume": "1"},
         "EGeneral:Invalid arguments:type"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "stop-loss", "price": "1.0", "volume": "1"},
         "EGeneral:Invalid arguments:ordertype"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "-1"}, "EGeneral:Invalid arguments:volume"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.1", "oflags": "post"},
         "EGeneral:Invalid arguments:oflags"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.1", "userref": "x"},
         "EGeneral:Invalid arguments:userref"),
        ({"type": "buy", "ordertype": "market", "volume": "0.1"}, "EGeneral:Invalid arguments:pair"),
        ({"pair": "DOGEUSD", "type": "buy", "ordertype": "market", "volume": "1"}, "EQuery:Unknown asset pair"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.0", "volume": "10"},
         "EOrder:Insufficient funds"),
        ({"pair": "XBTUSD", "type": "buy", "ordertype": "market", "volume": "0.1", "deadline": "2020-01-01T00:00:00Z"},
         "EService:Deadline elapsed"),
    ],
)
def test_add_order_rejections(client, params, expected) -> None:
    assert err(client.call("AddOrder", **params)) == [expected]


def test_venue_status_modes(client, venue) -> None:
    limit = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.0", "volume": "0.01"}
    venue.set_status("maintenance")
    assert err(client.call("AddOrder", **limit)) == ["EService:Unavailable"]
    assert err(client.call("CancelAll")) == ["EService:Unavailable"]
    venue.set_status("cancel_only")
    assert err(client.call("AddOrder", **limit)) == ["EService:Market in cancel_only mode"]
    assert ok(client.call("CancelAll")) == {"count": 0}
    venue.set_status("post_only")
    assert err(client.call("AddOrder", **limit)) == ["EService:Market in post_only mode"]
    ok(client.call("AddOrder", **limit, oflags="post"))
    venue.set_status("online")
    ok(client.call("AddOrder", **limit))


def test_pair_status_from_assetpairs_applies(client, venue) -> None:
    # the fixture has ADA/EUR in cancel_only and XRP/USD in post_only
    assert err(client.call("AddOrder", pair="ADAEUR", type="buy", ordertype="limit", price="0.5", volume="10")) == [
        "EService:Market in cancel_only mode"]
    assert err(client.call("AddOrder", pair="XRPUSD", type="buy", ordertype="market", volume="10")) == [
        "EService:Market in post_only mode"]
    venue.set_status("limit_only", venue.pairs.get("XBTUSD"))
    assert err(client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="0.01")) == [
        "EService:Market in limit_only mode"]
    assert venue.catalog.pairs["XXBTZUSD"]["status"] == "limit_only"  # what public AssetPairs shows


def test_cl_ord_id_must_be_unique_among_open_orders(client) -> None:
    params = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.0", "volume": "0.01"}
    ok(client.call("AddOrder", **params, cl_ord_id="client-1"))
    assert err(client.call("AddOrder", **params, cl_ord_id="client-1")) == ["EOrder:Duplicate order"]


def test_open_orders_limit_per_pair(client, venue) -> None:
    params = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "20000.0", "volume": "0.0001"}
    venue.limiter.enabled = False
    for _ in range(80):  # intermediate tier: 80 open orders per pair
        ok(client.call("AddOrder", **params))
    assert err(client.call("AddOrder", **params)) == ["EOrder:Orders limit exceeded"]


# -- cancelling --------------------------------------------------------------------------------


def test_cancel_by_txid_userref_and_cl_ord_id(client, venue) -> None:
    params = {"pair": "XBTUSD", "type": "buy", "ordertype": "limit", "price": "29000.0", "volume": "0.01"}
    a = ok(client.call("AddOrder", **params))["txid"][0]
    ok(client.call("AddOrder", **params, userref=42))
    ok(client.call("AddOrder", **params, userref=42))
    ok(client.call("AddOrder", **params, cl_ord_id="abc"))
    assert ok(client.call("CancelOrder", txid=a)) == {"count": 1, "pending": False}
    assert ok(client.call("CancelOrder", txid=a)) == {"count": 0, "pending": False}
    assert ok(client.call("CancelOrder", txid="42")) == {"count": 2, "pending": False}
    assert ok(client.call("CancelOrder", cl_ord_id="abc")) == {"count": 1, "pending": False}
    assert err(client.call("CancelOrder", txid="OAAAAA-BBBBB-CCCCCC")) == ["EOrder:Unknown order"]
    assert err(client.call("CancelOrder", cl_ord_id="nope")) == ["EOrder:Unknown order"]
    assert ok(client.call("OpenOrders")) == {"open": {}}
    assert venue.accounts.get("AA0001").hold("ZUSD") == 0


def test_cancel_all(client) -> None:
    for price in ("29000.0", "28000.0"):
        ok(client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price=price, volume="0.01"))
    assert ok(client.call("CancelAll")) == {"count": 2}


# -- queries -----------------------------------------------------------------------------------


def test_open_closed_and_query_orders(client) -> None:
    resting = ok(client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="limit", price="29000.0",
                             volume="0.01", userref=1, cl_ord_id="r-1"))["txid"][0]
    market = ok(client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="0.6",
                            userref=2))["txid"][0]
    open_ = ok(client.call("OpenOrders", trades="true"))["open"]
    assert list(open_) == [resting]
    info = open_[resting]
    assert info["status"] == "open" and info["userref"] == 1 and info["cl_ord_id"] == "r-1"
    assert info["descr"]["price"] == "29000.0" and info["vol"] == "0.01000000" and info["oflags"] == "fciq"
    assert ok(client.call("OpenOrders", userref=9)) == {"open": {}}
    assert list(ok(client.call("OpenOrders", cl_ord_id="r-1"))["open"]) == [resting]
    closed = ok(client.call("ClosedOrders"))
    assert closed["count"] == 1 and closed["closed"][market]["status"] == "closed"
    queried = ok(client.call("QueryOrders", txid=f"{resting},{market}", trades="true"))
    assert queried[market]["vol_exec"] == "0.60000000" and len(queried[market]["trades"]) == 2
    assert queried[market]["price"] == "30011.7" and queried[market]["cost"] == "18007.00000"
    assert list(ok(client.call("QueryOrders", userref=2))) == [market]
    assert err(client.call("QueryOrders", txid="OAAAAA-BBBBB-CCCCCC")) == ["EOrder:Invalid order"]
    assert err(client.call("QueryOrders")) == ["EGeneral:Invalid arguments:txid"]


def test_trades_history_and_query_trades(client) -> None:
    ok(client.call("AddOrder", pair="XBTUSD", type="buy", ordertype="market", volume="0.6"))
    history = ok(client.call("TradesHistory"))
    assert history["count"] == 2
    first = list(history["trades"].values())[-1]
    assert first == {**first, "pair": "XXBTZUSD", "type": "buy", "ordertype": "market", "price": "30010.00000",
                     "vol": "0.50000000", "cost": "15005.00000", "fee": "39.01300", "maker": False, "misc": ""}
    assert isinstance(first["trade_id"], int) and first["postxid"].startswith("T")
    txids = list(history["trades"])
    assert list(ok(client.call("QueryTrades", txid=",".join(txids)))) == txids
    assert ok(client.call("TradesHistory", ofs=1))["trades"].keys() == {txids[1]}


def test_balance_and_balance_ex(client) -> None:
    assert ok(client.call("Balance")) == {"SOL": "10.0000000000", "XXBT": "1.0000000000", "ZUSD": "100000.0000"}
    ok(client.call("AddOrder", pair="XBTUSD", type="sell", ordertype="limit", price="31000.0", volume="0.25"))
    assert ok(client.call("BalanceEx"))["XXBT"] == {"balance": "1.0000000000", "hold_trade": "0.2500000000"}


def test_websockets_token(client, venue) -> None:
    result = ok(client.call("GetWebSocketsToken"))
    assert result["expires"] == 900 and len(result["token"]) >= 40
    assert venue.redeem_token(result["token"]) is venue.accounts.get("AA0001")


def test_cancel_all_orders_after_answers_like_kraken(client, clock) -> None:
    clock.now = 1_679_679_716.0  # 2023-03-24T17:41:56Z
    assert ok(client.call("CancelAllOrdersAfter", timeout=60)) == {"currentTime": "2023-03-24T17:41:56Z",
                                                                   "triggerTime": "2023-03-24T17:42:56Z"}
    assert ok(client.call("CancelAllOrdersAfter", timeout=0))["triggerTime"] == "0"
    assert err(client.call("CancelAllOrdersAfter", timeout=86400)) == ["EGeneral:Invalid arguments:timeout"]
