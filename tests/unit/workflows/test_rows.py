"""Ingest records into mirror rows: top of book after each book record, trades and bars (v2 and v1)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from sandbox.ingest.normalise import Normaliser
from sandbox.replay.book import parse_frame
from sandbox.workflows.mirror import channel_of
from sandbox.workflows.rows import TopOfBook, depth_for, ohlc_rows, parse_ts, trade_rows


def book(kind: str, bids: list[list[str]], asks: list[list[str]], ts: str = "2026-07-07T23:00:00.5Z") -> dict:
    return {"channel": "book", "symbol": "BTC/USD", "type": kind, "exchange_ts": ts, "bids": bids, "asks": asks}


def test_top_of_book_follows_snapshots_and_updates() -> None:
    tob = TopOfBook("BTC/USD")
    assert tob.apply(book("update", [["100.0", "1"]], [])) is None  # nothing before the first snapshot
    snap = book("snapshot", [["100.0", "1.5"], ["99.5", "2"]], [["100.5", "0.7"], ["101.0", "3"]])
    assert tob.apply(snap) == ("100.0", "1.5", "100.5", "0.7")
    assert tob.apply(book("update", [["100.2", "0.1"]], [])) == ("100.2", "0.1", "100.5", "0.7")  # better bid
    assert tob.apply(book("update", [["100.2", "0"]], [["100.5", "0.00000000"]])) == ("100.0", "1.5", "101.0", "3")  # deletions
    assert tob.apply(book("update", [["100.0", "2.25"]], [])) == ("100.0", "2.25", "101.0", "3")  # quantity change at the top
    assert tob.apply(book("snapshot", [["90.0", "1"]], [["91.0", "1"]])) == ("90.0", "1", "91.0", "1")  # a snapshot resets
    assert tob.apply(book("update", [], [["91.0", "0"]])) is None  # one side empty: no top


def test_book_is_truncated_to_the_subscribed_depth() -> None:
    """A level pushed out of the depth is forgotten (Kraken stops updating it), so it never resurfaces as a ghost."""
    tob = TopOfBook("BTC/USD")
    bids = [[f"{100 - i}.0", "1"] for i in range(10)]  # 100.0 .. 91.0
    tob.apply(book("snapshot", bids, [["200.0", "1"]]))
    assert tob.book.depth == 10
    assert tob.apply(book("update", [["100.5", "1"]], []))[0] == "100.5"  # 91.0 falls out of the top 10
    # Delete every level Kraken still shows; 91.0 is not among them (Kraken forgot it too).
    gone = [["100.5", "0"]] + [[p, "0"] for p, _ in bids[:-1]]
    assert tob.apply(book("update", gone, [])) is None


def test_depth_is_inferred_from_the_snapshot() -> None:
    assert [depth_for(n) for n in (3, 10, 11, 25, 26, 100, 1000, 1500)] == [10, 10, 25, 25, 100, 100, 1000, 1500]


def test_book_state_round_trips() -> None:
    tob = TopOfBook("ETH/USD")
    tob.apply(book("snapshot", [["10.00", "1.0"], ["9.99", "2.0"]] + [[f"9.{80 - i}", "1"] for i in range(20)], [["10.01", "0.5"]]))
    again = TopOfBook.from_state("ETH/USD", json.loads(json.dumps(tob.state())))
    assert again.book.depth == 25 and again.synced
    upd = book("update", [["10.00", "0"]], [["10.02", "4"]])
    assert again.apply(upd) == tob.apply(upd) == ("9.99", "2.0", "10.01", "0.5")
    assert TopOfBook.from_state("ETH/USD", None).apply(upd) is None


def test_parse_ts_v2_and_v1() -> None:
    assert parse_ts("2026-07-07T23:00:03.977459Z") == datetime(2026, 7, 7, 23, 0, 3, 977459, tzinfo=UTC)
    assert parse_ts("2026-07-07T23:00:00.000000000Z") == datetime(2026, 7, 7, 23, 0, tzinfo=UTC)
    assert parse_ts("1783465203.977459") == datetime(2026, 7, 7, 23, 0, 3, 977459, tzinfo=UTC)
    assert parse_ts(None) is None


def _record(frame: dict, api: str = "v2") -> dict:
    """The ingest's record of a frame (the real normaliser)."""
    from sandbox.ingest.normalise import messages_of

    normaliser = Normaliser(api=api)
    (channel, symbol, kind, payload), = list(messages_of(parse_frame(json.dumps(frame))))
    _, _, value, _ = normaliser.record(channel, symbol, kind, payload, 0)
    return json.loads(value)


def test_v2_trades_and_bars_become_rows() -> None:
    trades = _record({"channel": "trade", "type": "update", "data": [
        {"symbol": "BTC/USD", "side": "buy", "price": 63500.1, "qty": 0.015, "ord_type": "market", "trade_id": 7, "timestamp": "2026-07-07T23:00:00.583944Z"},
        {"symbol": "BTC/USD", "side": "sell", "price": 63500.0, "qty": 1.5, "ord_type": "limit", "trade_id": 8, "timestamp": "2026-07-07T23:00:00.6Z"},
    ]})
    rows = trade_rows(trades, "kraken.trade.BTC-USD", 41)
    assert rows == [
        (datetime(2026, 7, 7, 23, 0, 0, 583944, tzinfo=UTC), "BTC/USD", "63500.1", "0.015", "buy", "market", 7, "kraken.trade.BTC-USD", 41, 0),
        (datetime(2026, 7, 7, 23, 0, 0, 600000, tzinfo=UTC), "BTC/USD", "63500.0", "1.5", "sell", "limit", 8, "kraken.trade.BTC-USD", 41, 1),
    ]
    bars = _record({"channel": "ohlc", "type": "update", "data": [
        {"symbol": "BTC/USD", "open": 1.5, "high": 2.0, "low": 1.25, "close": 1.75, "trades": 3, "volume": 10.5, "vwap": 1.6,
         "interval_begin": "2026-07-07T23:00:00.000000000Z", "interval": 1, "timestamp": "2026-07-07T23:01:00.000000Z"}]})
    assert ohlc_rows(bars, "kraken.ohlc.BTC-USD", 3) == [
        (datetime(2026, 7, 7, 23, 0, tzinfo=UTC), "BTC/USD", 1, "1.5", "2.0", "1.25", "1.75", "1.6", "10.5", 3, "kraken.ohlc.BTC-USD", 3, 0)]


def test_v1_trades_and_bars_become_rows() -> None:
    trades = _record([0, [["5541.20000", "0.15850568", "1534614057.321597", "s", "l", ""]], "trade", "XBT/USD"], api="v1")
    (row,) = trade_rows(trades, "kraken.trade.XBT-USD", 0)
    assert row[1:7] == ("XBT/USD", "5541.20000", "0.15850568", "sell", "limit", None)
    assert row[0] == datetime(2018, 8, 18, 17, 40, 57, 321597, tzinfo=UTC)
    bar = _record([42, ["1542057314.748456", "1542057360.435743", "3586.7", "3586.7", "3586.6", "3586.6", "3586.68894", "0.03373000", 2],
                   "ohlc-1", "XBT/USD"], api="v1")
    (row,) = ohlc_rows(bar, "kraken.ohlc.XBT-USD", 5)
    assert row[1:10] == ("XBT/USD", 1, "3586.7", "3586.7", "3586.6", "3586.6", "3586.68894", "0.03373000", 2)


def test_only_mirrored_channels_of_the_prefix() -> None:
    assert channel_of("kraken.book.BTC-USD", "kraken") == "book"
    assert channel_of("kraken.ticker.BTC-USD", "kraken") is None
    assert channel_of("other.trade.BTC-USD", "kraken") is None
    assert channel_of("oms.fills", "kraken") is None
