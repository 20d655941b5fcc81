"""Balances and holds, fee tiers from 30-day volume, funds checks, per-key nonces."""

from __future__ import annotations

from decimal import Decimal

import pytest

from sandbox.venue.trading.accounts import NonceGuard
from sandbox.venue.trading.errors import KrakenError

D = Decimal
ASKS = [("30010.0", "0.5"), ("30020.0", "1.0")]
BIDS = [("29990.0", "1.0"), ("29980.0", "2.0")]


@pytest.fixture(autouse=True)
def book(market):
    market.book(BIDS, ASKS)
    return market


def errors(call) -> list[str]:
    with pytest.raises(KrakenError) as err:
        call()
    return err.value.errors


def test_a_limit_buy_holds_its_cost_plus_the_taker_fee_and_cancelling_releases_it(trader) -> None:
    t = trader(ZUSD="10000")
    txid = t.buy("0.2", "29000.0")
    assert t.account.hold("ZUSD") == D("0.2") * D("29000.0") * D("1.0026")
    assert t("BalanceEx")["ZUSD"] == {"balance": "10000.0000", "hold_trade": "5815.0800"}
    t("CancelOrder", txid=txid)
    assert t.account.hold("ZUSD") == 0 and t.account.balance("ZUSD") == D("10000")


def test_a_limit_sell_holds_the_base_volume(trader) -> None:
    t = trader(XXBT="1")
    t.sell("0.4", "31000.0")
    assert t.account.hold("XXBT") == D("0.4") and t.account.available("XXBT") == D("0.6")
    assert t("Balance") == {"XXBT": "1.0000000000"}


def test_partial_fills_release_the_hold_in_proportion_and_credit_the_other_side(trader, book) -> None:
    t = trader(ZUSD="10000")
    txid = t.buy("0.2", "29990.0")
    book.update(bids=[("29990.0", "0")])  # the queue ahead has gone
    book.trade("29990.0", "0.05", "sell")
    order = t.order(txid)
    assert order.vol_exec == D("0.05")
    assert t.account.hold("ZUSD") == D("0.15") * D("29990.0") * D("1.0026")
    fee = D("1499.50000") * D("0.0016")  # maker, first tier
    assert t.account.balance("ZUSD") == D("10000") - D("1499.50000") - fee.quantize(D("0.00001"))
    assert t.account.balance("XXBT") == D("0.05")


def test_insufficient_funds_for_a_limit_or_a_market_order(trader) -> None:
    t = trader(ZUSD="1000", XXBT="0.01")
    assert errors(lambda: t.buy("0.1", "29000.0")) == ["EOrder:Insufficient funds"]
    assert errors(lambda: t.buy("0.1")) == ["EOrder:Insufficient funds"]
    assert errors(lambda: t.sell("0.02")) == ["EOrder:Insufficient funds"]
    t.buy("0.03", "29000.0")  # 871.2... of 1000 held
    assert errors(lambda: t.buy("0.01", "29000.0")) == ["EOrder:Insufficient funds"]
    assert t.account.orders and all(o.is_open for o in t.account.orders.values())


def test_fee_tier_follows_the_thirty_day_volume(trader) -> None:
    small = trader(ZUSD="100000")
    large = trader(ZUSD="100000", volume_30d="1000000")  # the 1M tier: 0.16 % taker, 0.06 % maker
    small.buy("0.1")
    large.buy("0.1")
    assert small.account.trades[0].fee == D("7.80260")  # 3001.00000 x 0.26 %
    assert large.account.trades[0].fee == D("4.80160")  # 3001.00000 x 0.16 %
    volume = large("TradeVolume", pair="XBTUSD")
    assert volume["currency"] == "ZUSD" and volume["volume"] == "1003001.0000"
    assert volume["fees"]["XXBTZUSD"] == {"fee": "0.1600", "minfee": "0.1000", "maxfee": "0.2600",
                                         "nextfee": "0.1400", "nextvolume": "2500000.0000",
                                         "tiervolume": "1000000.0000"}
    assert volume["fees_maker"]["XXBTZUSD"]["fee"] == "0.0600"


def test_traded_volume_moves_an_account_into_the_next_tier(trader) -> None:
    t = trader(ZUSD="100000", volume_30d="48000")
    t.buy("0.1")  # 3001 USD: 51001 of 30-day volume, past the 50,000 threshold
    t.buy("0.1")
    rates = [f.fee / f.cost * 100 for f in t.account.trades]
    assert [r.quantize(D("0.01")) for r in rates] == [D("0.26"), D("0.24")]


def test_thirty_day_volume_forgets_old_trades(trader, clock) -> None:
    t = trader(ZUSD="100000")
    t.buy("0.1")
    assert t.account.volume_30d(clock()) == D("3001.00000")
    clock.advance(31 * 86400)
    assert t.account.volume_30d(clock()) == 0


def test_fee_in_base_currency_with_fcib(trader) -> None:
    t = trader(ZUSD="100000")
    t.buy("0.5", oflags="fcib")
    fill = t.account.trades[0]
    assert fill.fee_asset == "XXBT" and fill.fee == D("0.00130000")
    assert t.account.balance("XXBT") == D("0.5") - D("0.0013")
    assert t.account.balance("ZUSD") == D("100000") - D("15005.00000")


def test_nonce_guard_strictly_increasing_by_default() -> None:
    guard = NonceGuard()
    assert guard.accept(10) and guard.accept(11)
    assert not guard.accept(11) and not guard.accept(5)


def test_nonce_guard_with_a_window_accepts_late_nonces_once() -> None:
    guard = NonceGuard(window=100)
    assert guard.accept(1000)
    assert guard.accept(950)  # late, but within the window and unseen
    assert not guard.accept(950)  # a replay
    assert not guard.accept(899)  # outside the window
    assert guard.accept(1001)


def test_an_account_for_the_platforms_credentials_directory(venue, tmp_path) -> None:
    from sandbox.venue.trading.signing import new_api_key, new_api_secret

    key, secret = new_api_key(), new_api_secret()
    (tmp_path / "api_key").write_text(key + "\n")
    (tmp_path / "api_secret").write_text(secret)
    account = venue.account_from_credentials(tmp_path, {"ZUSD": "5"})
    assert account.balance("ZUSD") == D("5") and venue.accounts.key(key).secret == secret
    assert venue.account_from_credentials(tmp_path) is account
    assert venue.account_from_credentials(tmp_path / "missing") is None
