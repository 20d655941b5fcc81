"""The Kraken book and checksum: unit cases plus Kraken's documented worked examples."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.replay.book import OrderBook, V1Books, V2Books, parse_frame
from sandbox.replay.checksum import book_checksum, checksum_input, fragment, token_text

CONFORMANCE = "kraken-conformance"


# -- tokens and fragments ---------------------------------------------------------


def test_decimal_tokens_keep_their_digits() -> None:
    assert token_text(Decimal("0.00000050")) == "0.00000050"  # str() would give 5.0E-7
    assert token_text(Decimal("63499.0")) == "63499.0"
    assert token_text("0.05000") == "0.05000"
    assert token_text(42) == "42"


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="parse_float=Decimal"):
        token_text(0.1)


def test_fragment_strips_point_and_leading_zeros() -> None:
    assert fragment("0.05000") + fragment("0.00000304") == "5000304"  # Kraken's v1 guide example
    assert fragment(Decimal("0.566"), 4) == "5660"
    assert fragment(Decimal("18097.1547"), 8) == "1809715470000"


def test_parse_frame_keeps_v2_number_tokens() -> None:
    msg = parse_frame('{"price":63499.0,"qty":0.00005100,"checksum":123}')
    assert token_text(msg["price"]) == "63499.0"
    assert token_text(msg["qty"]) == "0.00005100"
    assert msg["checksum"] == 123


# -- OrderBook --------------------------------------------------------------------


def _book(depth: int = 3) -> OrderBook:
    book = OrderBook("XBT/USD", depth)
    book.apply_snapshot(
        bids=[("100.0", "1.0"), ("99.0", "2.0"), ("98.0", "3.0")],
        asks=[("101.0", "1.5"), ("102.0", "2.5"), ("103.0", "3.5")],
    )
    return book


def test_snapshot_orders_sides_best_first() -> None:
    book = _book()
    assert [lv.price_text for lv in book.bids()] == ["100.0", "99.0", "98.0"]
    assert [lv.price_text for lv in book.asks()] == ["101.0", "102.0", "103.0"]
    assert book.best_bid.price == Decimal("100.0") and book.best_ask.price == Decimal("101.0")
    assert not book.crossed


def test_update_inserts_changes_deletes_and_truncates() -> None:
    book = _book()
    book.apply_update(bids=[("99.5", "4.0"), ("98.0", "0.0")], asks=[("102.0", "9.00"), ("100.5", "1")])
    assert [lv.price_text for lv in book.bids()] == ["100.0", "99.5", "99.0"]
    # the insert at 100.5 pushed 103.0 below the depth: Kraken sends no delete for it
    assert [(lv.price_text, lv.qty_text) for lv in book.asks()] == [("100.5", "1"), ("101.0", "1.5"), ("102.0", "9.00")]
    assert len(book) == 6


def test_deleting_an_absent_level_is_harmless() -> None:
    book = _book()
    book.apply_update(bids=[("50.0", "0.00000000")], asks=[])
    assert len(book) == 6


def test_crossed_book_is_detected() -> None:
    book = _book()
    book.apply_update(bids=[("101.0", "1.0")], asks=[])
    assert book.crossed


def test_checksum_uses_token_digits() -> None:
    book = _book()
    assert book.checksum_input() == "1010151020251030351000109902098030"
    assert book.checksum() == book_checksum(
        [(lv.price_text, lv.qty_text) for lv in book.asks()], [(lv.price_text, lv.qty_text) for lv in book.bids()]
    )


def test_checksum_covers_ten_levels_whatever_the_depth() -> None:
    book = OrderBook("X", 100)
    book.apply_snapshot(
        bids=[(str(100 - i), "1.0") for i in range(30)], asks=[(str(200 + i), "1.0") for i in range(30)]
    )
    assert len(book.bids()) == 30
    assert book.checksum_input().count("10") == 20 + 1  # 20 quantities "10" plus the bid price 100


def test_v2_books_track_depth_from_the_ack_and_flag_mismatches() -> None:
    books = V2Books()
    books.handle(parse_frame('{"method":"subscribe","result":{"channel":"book","depth":25,"symbol":"A/B"},"success":true}'))
    snap = {"channel": "book", "type": "snapshot", "data": [{"symbol": "A/B", "bids": [{"price": Decimal("1.0"), "qty": Decimal("2.0")}], "asks": [], "checksum": 0}]}
    (check,) = books.handle(snap)
    assert books.books["A/B"].depth == 25
    assert check.kind == "snapshot" and check.expected == 0 and check.computed != 0 and not check.ok
    assert books.handle({"channel": "heartbeat"}) == []


def test_v1_split_update_applies_both_objects() -> None:
    books = V1Books()
    books.handle([1, {"as": [["2.0", "1.0", "1.1"]], "bs": [["1.0", "1.0", "1.1"]]}, "book-10", "A/B"])
    (check,) = books.handle([1, {"a": [["1.5", "3.0", "1.2"]]}, {"b": [["1.0", "0.0", "1.3"]], "c": "0"}, "book-10", "A/B"])
    book = books.books["A/B"]
    assert [lv.price_text for lv in book.asks()] == ["1.5", "2.0"] and book.bids() == []
    assert check.expected == 0 and check.computed == book.checksum() and check.timestamp == "1.3"


# -- Kraken's documented worked examples (transcribed, see the conformance README) --


@pytest.fixture(scope="module")
def worked(shared_dir: Path) -> dict:
    return json.loads((shared_dir / CONFORMANCE / "kraken_docs_checksum_worked_examples.json").read_text())


@pytest.mark.shared
def test_v1_guide_example(worked: dict) -> None:
    ex = worked["v1_guide_example"]
    asks = [(p, q) for p, q, _ in ex["book_state"]["as"]]
    bids = [(p, q) for p, q, _ in ex["book_state"]["bs"]]
    assert checksum_input(asks, bids) == ex["expected_checksum_input"]
    assert book_checksum(asks, bids) == ex["expected_checksum_uint32"] == 974947235
    # the documented update (asks and bids in two objects) lands below the top 10: same checksum
    books = V1Books()
    books.handle([0, {"as": ex["book_state"]["as"], "bs": ex["book_state"]["bs"]}, "book-1000", "BTC/USD"])
    (check,) = books.handle(ex["example_update_message_as_shown_in_docs"])
    assert check.ok and check.computed == 974947235


@pytest.mark.shared
def test_v2_guide_example(worked: dict) -> None:
    ex = worked["v2_guide_example"]
    books = V2Books()
    (check,) = books.handle(ex["snapshot_message"])
    assert books.books["BTC/USD"].checksum_input() == ex["expected_concatenated_input_281_chars"]
    assert len(ex["expected_concatenated_input_281_chars"]) == 281
    assert check.ok and check.computed == ex["expected_checksum_uint32"] == 3310070434


@pytest.mark.shared
def test_v2_book_channel_page_example_needs_pair_precision(worked: dict) -> None:
    ex = worked["v2_book_channel_reference_example"]
    # the page's numbers lost trailing zeros: as printed they do not verify ...
    plain = V2Books()
    (check,) = plain.handle(parse_frame(json.dumps(ex["snapshot_message"])))
    assert not check.ok
    # ... re-formatted to MATIC/USD's 4 price and 8 quantity decimals they do
    books = V2Books(precisions={"MATIC/USD": (4, 8)})
    for ack in ex["subscribe_ack_examples"]:
        books.handle(ack)
    (snap,) = books.handle(parse_frame(json.dumps(ex["snapshot_message"])))
    (update,) = books.handle(parse_frame(json.dumps(ex["update_message"])))
    assert (snap.ok, snap.computed) == (True, 2439117997)
    assert (update.ok, update.computed) == (True, 2114181697)


# -- real captures ----------------------------------------------------------------


@pytest.mark.shared
def test_every_v2_checksum_of_the_flashbook_capture_verifies(shared_dir: Path) -> None:
    path = shared_dir / CONFORMANCE / "flashbook_kraken_v2_book10_trade_btcusd_ethusd_20260707.ndjson"
    books = V2Books()
    checks = [c for line in path.read_text().splitlines() for c in books.handle(parse_frame(line))]
    assert len(checks) == 2962
    assert [c for c in checks if not c.ok] == []
    assert sum(c.kind == "snapshot" for c in checks) == 2
    assert set(books.books) == {"BTC/USD", "ETH/USD"}


@pytest.mark.shared
def test_float_parsing_breaks_the_checksum_as_documented(shared_dir: Path) -> None:
    path = shared_dir / CONFORMANCE / "flashbook_kraken_v2_book10_trade_btcusd_ethusd_20260707.ndjson"
    snapshot = next(line for line in path.read_text().splitlines() if '"type":"snapshot"' in line)
    with pytest.raises(TypeError, match="float"):
        V2Books().handle(json.loads(snapshot))


@pytest.mark.shared
def test_every_v1_checksum_of_the_pykrakensdk_capture_verifies(shared_dir: Path) -> None:
    capture = json.loads((shared_dir / CONFORMANCE / "pykrakensdk_v1_book10_xbtusd_20230830.json").read_text())
    books = V1Books()
    checks = [c for msg in capture["init"] + capture["updates"] for c in books.handle(msg)]
    updates = [c for c in checks if c.kind == "update"]
    assert len(updates) == 979 and all(c.expected is not None for c in updates)
    assert [c for c in checks if not c.ok] == []
    assert books.books["XBT/USD"].depth == 10
