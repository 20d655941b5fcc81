"""The replay side: market frames, market state, timestamp rebasing."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.replay.fixture import FixtureError, Record, write_session
from sandbox.replay.player import MarketState, Rebaser, ReplaySession, rebase_offset
from sandbox.replay.protocol import parse_rfc3339


def test_session_keeps_market_frames_only(v2_session: Path) -> None:
    session = ReplaySession.load(v2_session)
    kinds = {f.info.kind for f in session.frames}
    assert kinds == {"book", "trade", "ticker", "ohlc"}
    assert session.symbols == {"BTC/USD", "ETH/USD"}
    assert session.depths == {"BTC/USD": 10, "ETH/USD": 10}
    assert session.intervals == {"BTC/USD": {1}, "ETH/USD": {1}}
    assert session.trade_ids is not None and session.trade_ids[0] < session.trade_ids[1]


def test_market_state_follows_the_session(v2_session: Path) -> None:
    session = ReplaySession.load(v2_session)
    state = MarketState("v2", session.depths, verify=True)
    mismatches = [c for f in session.frames for c in state.apply(f) if not c.ok]
    assert mismatches == []
    assert set(state.tickers) == {"BTC/USD", "ETH/USD"} and ("BTC/USD", 1) in state.candles
    assert 0 < len(state.trades["BTC/USD"]) <= 50
    assert len(state.book("BTC/USD").bids()) == 10


def test_a_session_without_market_data_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.ndjson"
    write_session(path, [Record(1.0, "recv", '{"channel":"heartbeat"}')], source="test")
    with pytest.raises(FixtureError, match="no market-data frames"):
        ReplaySession.load(path)


def test_v2_rebasing_shifts_stamps_and_trade_ids_not_numbers() -> None:
    rebase = Rebaser("v2", 3600.25, id_shift=100)
    frame = ('{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","price":63501.9,"qty":0.00004100,'
             '"trade_id":7,"timestamp":"2026-07-07T23:59:59.947173Z"}]}')
    assert rebase(frame) == frame.replace("2026-07-07T23:59:59.947173Z", "2026-07-08T01:00:00.197173Z").replace(
        '"trade_id":7', '"trade_id":107')
    nanos = '{"timestamp":"2023-10-04T16:26:01.806315597Z","interval_begin":"2023-10-04T15:25:00.000000000Z"}'
    assert Rebaser("v2", 60)(nanos) == '{"timestamp":"2023-10-04T16:27:01.806315597Z","interval_begin":"2023-10-04T15:26:00.000000000Z"}'
    assert Rebaser("v2", 0)(frame) is frame


def test_v1_rebasing_shifts_epoch_strings() -> None:
    frame = '[336,{"b":[["27119.90000","13.54109952","1693415330.621700"]],"c":"3572756970"},"book-10","XBT/USD"]'
    assert Rebaser("v1", 0.5)(frame) == frame.replace("1693415330.621700", "1693415331.121700")


def test_rebase_offset_keeps_candle_boundaries(v2_session: Path) -> None:
    session = ReplaySession.load(v2_session)
    now = session.first_exchange_t + 1_000_000.4
    offset = rebase_offset(session, now)
    assert offset % 60 == 0 and abs(offset - 1_000_000.4) <= 30
    stamp = "2026-07-07T23:01:00.000000000Z"
    assert parse_rfc3339(Rebaser("v2", offset)(f'"interval_begin":"{stamp}"').split('"')[3]) % 60 == 0


def test_lazy_state_defers_books_and_ends_up_with_the_eager_books(v2_session: Path) -> None:
    session = ReplaySession.load(v2_session)
    eager = MarketState("v2", session.depths)
    lazy = MarketState("v2", session.depths, lazy=True)
    half = len(session.frames) // 2
    for i, frame in enumerate(session.frames):
        eager.apply(frame)
        assert lazy.apply(frame) == []  # nothing applied while playing
        if i == half:  # a read in the middle (a late subscriber) brings the books up to date
            assert lazy.book("BTC/USD").as_dict() == eager.book("BTC/USD").as_dict()
    assert lazy.has_book("ETH/USD") and not lazy.has_book("DOGE/USD")
    assert lazy.book_times == eager.book_times
    for symbol in ("BTC/USD", "ETH/USD"):
        assert lazy.book(symbol).as_dict() == eager.book(symbol).as_dict()
        assert lazy.book(symbol).checksum() == eager.book(symbol).checksum()
    assert not MarketState("v2", session.depths, lazy=True, verify=True).lazy  # verifying is never deferred
