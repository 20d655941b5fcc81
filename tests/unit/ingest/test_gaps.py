"""Gap and order detection: trade ids and exchange time."""

from __future__ import annotations

from sandbox.ingest.gaps import Clock, TradeIds


def test_consecutive_trade_ids_are_fine() -> None:
    ids = TradeIds()
    assert all(ids.check("BTC/USD", i).ok for i in range(100, 110))


def test_a_jump_is_a_gap_of_the_missing_count() -> None:
    ids = TradeIds()
    ids.check("BTC/USD", 100)
    result = ids.check("BTC/USD", 104)
    assert result.missing == 3 and not result.ok
    assert ids.check("BTC/USD", 105).ok


def test_a_step_back_or_repeat_is_out_of_order() -> None:
    ids = TradeIds()
    ids.check("X", 10)
    assert ids.check("X", 10).out_of_order == 1
    assert ids.check("X", 9).out_of_order == 1
    assert ids.check("X", 11).ok  # the last good id is kept


def test_symbols_are_independent_and_missing_ids_unchecked() -> None:
    ids = TradeIds()
    ids.check("A", 1)
    assert ids.check("B", 500).ok
    assert ids.check("A", None).ok
    assert ids.check("A", "2").ok  # v1 ids as text


def test_clock_flags_time_going_back() -> None:
    clock = Clock()
    assert clock.check("book", "A", "2026-07-07T23:00:03.977459Z").ok
    assert clock.check("book", "A", "2026-07-07T23:00:03.977459Z").ok  # equal is fine
    assert clock.check("book", "A", "2026-07-07T23:00:03.900000Z").out_of_order == 1
    assert clock.check("book", "B", "2026-07-07T23:00:01.000000Z").ok


def test_clock_compares_v1_epoch_text_as_numbers() -> None:
    clock = Clock()
    assert clock.check("book", "A", "999.5").ok
    assert clock.check("book", "A", "1000.1").ok  # text order would say 1000.1 < 999.5
    assert clock.check("book", "A", "999.9").out_of_order == 1


def test_forget_after_resubscribe() -> None:
    clock = Clock()
    clock.check("book", "A", "2026-07-07T23:00:03.977459Z")
    clock.forget("book", "A")
    assert clock.check("book", "A", "2026-07-07T23:00:01.000000Z").ok


def test_in_order_agrees_with_check_for_rfc3339_stamps() -> None:
    fast, full = Clock(), Clock()
    stamps = ["2026-01-01T00:00:01.000000Z", "2026-01-01T00:00:02.000000Z", "2026-01-01T00:00:01.500000Z",
              "2026-01-01T00:00:02.000000Z", "2026-01-01T00:00:03.000000Z"]
    got = [fast.in_order(("book", "X/Y"), s) for s in stamps]
    want = [full.check("book", "X/Y", s).ok for s in stamps]
    assert got == want == [True, True, False, True, True]
    assert fast.last == full.last
