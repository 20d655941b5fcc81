"""The admin API: loopback only, accounts, status, synthetic books and trades, seed and reset."""

from __future__ import annotations

import pytest

from sandbox.venue.trading.app import create_trading_app


@pytest.fixture
def app(catalog, clock):
    return create_trading_app(catalog, seed=3, clock=clock)


@pytest.fixture
def admin(app, app_client):
    return app_client(app)


def test_only_loopback_clients_reach_the_admin_api(app, app_client) -> None:
    outsider = app_client(app, client=("10.1.2.3", 5555))
    assert outsider.request("GET", "/admin/trading").status_code == 403
    assert outsider.request("POST", "/admin/reset").status_code == 403
    assert app_client(app, client=("127.0.0.9", 1)).request("GET", "/admin/trading").status_code == 200


def test_the_allowed_networks_can_be_widened(catalog, app_client) -> None:
    app = create_trading_app(catalog, admin_networks=["127.0.0.0/8", "172.16.0.0/12"])
    assert app_client(app, client=("172.17.0.1", 1)).request("GET", "/admin/trading").status_code == 200
    assert app_client(app, client=("192.168.1.1", 1)).request("GET", "/admin/trading").status_code == 403


def test_accounts_are_created_with_a_working_key_pair(admin) -> None:
    created = admin.request("POST", "/admin/accounts", json={"balances": {"zusd": "250.5"}, "tier": "pro",
                                                             "volume_30d": "60000", "name": "qa"})
    assert created.status_code == 201
    body = created.json()
    assert body["account_id"] == "AA0001" and body["tier"] == "pro" and body["name"] == "qa"
    assert body["balances"]["ZUSD"] == {"balance": "250.5", "hold_trade": "0"}
    client = admin.signed(body["api_key"], body["api_secret"])
    assert client.call("Balance").json() == {"error": [], "result": {"ZUSD": "250.5000"}}
    funded = admin.request("POST", "/admin/accounts/AA0001/balances", json={"USD": "100", "BTC": "1"}).json()
    assert funded["balances"]["ZUSD"]["balance"] == "350.5" and funded["balances"]["XXBT"]["balance"] == "1"
    listed = admin.request("GET", "/admin/accounts/AA0001").json()
    assert listed["keys"][0]["api_key"] == body["api_key"] and "api_secret" not in listed["keys"][0]
    assert admin.request("GET", "/admin/accounts/AA9999").status_code == 404


def test_accounts_with_given_keys_and_bad_input(admin) -> None:
    secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
    body = admin.request("POST", "/admin/accounts", json={"api_key": "qa-key-0001", "api_secret": secret}).json()
    assert body["api_key"] == "qa-key-0001" and body["api_secret"] == secret
    again = admin.request("POST", "/admin/accounts", json={"api_key": "qa-key-0001", "api_secret": secret})
    assert again.status_code == 400
    assert admin.request("POST", "/admin/accounts", json={"tier": "whale"}).status_code == 400
    assert admin.request("POST", "/admin/accounts", json={"api_secret": "not base64 !!"}).status_code == 400
    assert admin.request("POST", "/admin/accounts", json={"balances": {"ZUSD": "lots"}}).status_code == 400
    key = admin.request("POST", "/admin/accounts/AA0001/keys", json={"nonce_window": 1000})
    assert key.status_code == 201 and key.json()["nonce_window"] == 1000


def test_status_of_the_venue_and_of_a_pair(app, admin) -> None:
    assert admin.request("PUT", "/admin/status", json={"status": "maintenance"}).json() == {
        "status": "maintenance", "previous": "online"}
    assert admin.request("GET", "/0/public/SystemStatus").json()["result"]["status"] == "maintenance"
    assert admin.request("PUT", "/admin/status", json={"status": "limit_only"}).status_code == 400
    assert admin.request("PUT", "/admin/status/ETHUSD", json={"status": "cancel_only"}).json()["pair"] == "XETHZUSD"
    public = admin.request("GET", "/0/public/AssetPairs", params={"pair": "ETHUSD"}).json()
    assert public["result"]["XETHZUSD"]["status"] == "cancel_only"
    assert admin.request("PUT", "/admin/status/NOPE", json={"status": "online"}).status_code == 404
    status = admin.request("GET", "/admin/status").json()
    assert status["status"] == "maintenance" and status["pairs"]["ADAEUR"] == "cancel_only"


def test_synthetic_book_set_patch_trade_and_back_to_the_replay(admin) -> None:
    book = admin.request("PUT", "/admin/book/XBTUSD", json={"bids": [["29990.0", "1"]], "asks": [[30010, 2]]}).json()
    assert book["source"] == "synthetic" and book["asks"] == [["30010", "2", "0"]]
    patched = admin.request("PATCH", "/admin/book/XBTUSD", json={"asks": [["30010", "0"], ["30020.0", "1.5"]]}).json()
    assert patched["asks"] == [["30020.0", "1.5", "0"]]
    traded = admin.request("POST", "/admin/trades", json={"pair": "XBTUSD", "price": "30020.0", "qty": "0.1",
                                                          "side": "buy"})
    assert traded.status_code == 200
    assert admin.request("DELETE", "/admin/book/XBTUSD").json()["source"] == "none"
    assert admin.request("PATCH", "/admin/book/XBTUSD", json={"asks": [["1", "1"]]}).status_code == 409
    assert admin.request("PUT", "/admin/book/XBTUSD", json={"asks": [["-1", "1"]]}).status_code == 400


def test_seed_and_reset(app, admin) -> None:
    admin.request("POST", "/admin/accounts", json={})
    admin.request("POST", "/admin/faults", json={"action": "latency", "latency_ms": 1})
    admin.request("PUT", "/admin/status/XBTUSD", json={"status": "post_only"})
    assert admin.request("POST", "/admin/seed", json={"seed": 99}).json() == {"seed": 99}
    summary = admin.request("GET", "/admin/trading").json()
    assert summary["seed"] == 99 and summary["accounts"] == [] and summary["faults"] == []
    assert summary["pair_status"]["XXBTZUSD"] == "online" and summary["pair_status"]["ADAEUR"] == "cancel_only"
    assert admin.request("POST", "/admin/reset").json() == {"seed": 99}
    assert admin.request("POST", "/admin/seed", json={}).status_code == 400
    assert admin.request("POST", "/admin/tick").status_code == 200
