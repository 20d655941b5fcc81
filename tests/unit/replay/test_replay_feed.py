"""Depth views and frame builders: what a depth-d subscriber is sent."""

from __future__ import annotations

from decimal import Decimal

from sandbox.replay.book import OrderBook, V1Books, V2Books, parse_frame
from sandbox.replay.feed import DepthView, v1_book_update, v1_subscription_status, v2_book, zero_like


def _deep_book(levels: int = 15) -> OrderBook:
    book = OrderBook("BTC/USD", depth=10**6)
    book.apply_snapshot(
        bids=[(f"{100 - i}.0", "1.00000000") for i in range(levels)],
        asks=[(f"{101 + i}.0", "1.00000000") for i in range(levels)],
    )
    return book


def test_zero_like_keeps_decimals() -> None:
    assert zero_like("1.50000000") == "0.00000000"
    assert zero_like("3") == "0"


def test_a_deleted_level_is_deleted_first_then_the_revealed_one_sent() -> None:
    book = _deep_book()
    view = DepthView(book, 10)
    view.snapshot()
    book.apply_bids([("100.0", "0.00000000")])
    bids, asks = view.update()
    assert [(lv.price_text, lv.qty_text) for lv in bids] == [("100.0", "0.00000000"), ("90.0", "1.00000000")]
    assert asks == []


def test_a_level_pushed_below_the_depth_gets_no_message() -> None:
    book = _deep_book()
    view = DepthView(book, 10)
    view.snapshot()
    book.apply_bids([("100.5", "2.00000000")])
    bids, _ = view.update()
    assert [(lv.price_text, lv.qty_text) for lv in bids] == [("100.5", "2.00000000")]  # 91.0 left silently


def test_a_view_deeper_than_its_book_deletes_what_the_book_dropped() -> None:
    book = OrderBook("X", depth=10)
    book.apply_snapshot(bids=[(f"{100 - i}.0", "1.0") for i in range(10)], asks=[("200.0", "1.0")])
    view = DepthView(book, 25)
    view.snapshot()
    book.apply_update(bids=[("100.5", "1.0")], asks=[])  # the book (depth 10) truncates 91.0 away
    bids, _ = view.update()
    assert [(lv.price_text, lv.qty_text) for lv in bids] == [("91.0", "0.0"), ("100.5", "1.0")]


def test_a_client_following_a_derived_view_keeps_valid_checksums() -> None:
    book = _deep_book(40)
    view = DepthView(book, 25)
    bids, asks = view.snapshot()
    client = V2Books()
    client.handle(parse_frame('{"method":"subscribe","result":{"channel":"book","depth":25,"symbol":"BTC/USD"},"success":true}'))
    (check,) = client.handle(parse_frame(v2_book("snapshot", "BTC/USD", bids, asks, book.checksum(), None)))
    assert check.ok
    for change in ([("99.0", "0.00000000")], [("100.2", "0.50000000")], [("100.0", "3.00000000")]):
        book.apply_bids(change)
        bids, asks = view.update()
        (check,) = client.handle(parse_frame(v2_book("update", "BTC/USD", bids, asks, book.checksum(), None)))
        assert check.ok, check


def test_v2_book_frame_writes_tokens_verbatim() -> None:
    book = OrderBook("BTC/USD")
    book.apply_snapshot(bids=[(Decimal("63499.0"), Decimal("0.00005100"))], asks=[])
    frame = v2_book("update", "BTC/USD", book.bids(), [], 42, "2026-07-07T23:00:03.947173Z")
    assert '{"price":63499.0,"qty":0.00005100}' in frame
    assert frame.endswith('"checksum":42,"timestamp":"2026-07-07T23:00:03.947173Z"}]}')


def test_v1_update_splits_asks_and_bids_and_flags_republished_levels() -> None:
    book = OrderBook("XBT/USD", depth=10**6)
    book.apply_snapshot(bids=[("100.00000", "1.00000000", "1.000000")], asks=[("101.00000", "1.00000000", "2.000000")])
    frame = v1_book_update(42, "book-10", "XBT/USD", book.bids(), book.asks(), 7, stamp="3.000000")
    assert frame == (
        '[42,{"a":[["101.00000","1.00000000","2.000000","r"]]},'
        '{"b":[["100.00000","1.00000000","1.000000","r"]],"c":"7"},"book-10","XBT/USD"]'
    )
    books = V1Books()
    books.handle([42, {"as": [], "bs": []}, "book-10", "XBT/USD"])
    (check,) = books.handle(parse_frame(frame))
    assert check.kind == "update" and len(books.books["XBT/USD"]) == 2


def test_v1_subscription_status_sorts_keys_like_kraken() -> None:
    text = v1_subscription_status("subscribed", {"name": "book", "depth": 10}, pair="XBT/USD", channel_id=336,
                                  channel_name="book-10")
    assert text == ('{"channelID":336,"channelName":"book-10","event":"subscriptionStatus","pair":"XBT/USD",'
                    '"status":"subscribed","subscription":{"depth":10,"name":"book"}}')
