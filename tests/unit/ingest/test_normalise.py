"""Normalisation: one record per data frame and symbol, numbers as the exact token text."""

from __future__ import annotations

import json
from decimal import Decimal

from sandbox.ingest.normalise import Normaliser, messages_of, topic_for
from sandbox.replay.book import parse_frame

V2_BOOK = (
    '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":63499.0,"qty":0.00005100}],'
    '"asks":[],"checksum":3356266482,"timestamp":"2026-07-07T23:00:03.977459Z"}]}'
)
V2_TRADES = (
    '{"channel":"trade","type":"update","data":['
    '{"symbol":"ETH/USD","side":"buy","price":1774.14,"qty":0.00147959,"ord_type":"limit","trade_id":64175815,"timestamp":"2026-07-07T23:00:04.585581Z"},'
    '{"symbol":"ETH/USD","side":"sell","price":1774,"qty":1.5,"ord_type":"market","trade_id":64175816,"timestamp":"2026-07-07T23:00:04.585590Z"},'
    '{"symbol":"BTC/USD","side":"buy","price":63501.9,"qty":0.00004134,"ord_type":"limit","trade_id":103436768,"timestamp":"2026-07-07T23:00:04.590753Z"}]}'
)
V1_BOOK_SPLIT = [
    336,
    {"a": [["27120.00000", "4.28732553", "1693415327.935623"]]},
    {"b": [["27119.90000", "0.00000000", "1693415330.621700"]], "c": "3572756970"},
    "book-10",
    "XBT/USD",
]


def test_topic_names_replace_slash_and_unsafe_characters() -> None:
    assert topic_for("kraken", "book", "XBT/USD") == "kraken.book.XBT-USD"
    assert topic_for("kraken", "trade", "DOGE/USD") == "kraken.trade.DOGE-USD"
    assert topic_for("k", "ticker", "A B/€") == "k.ticker.A_B-_"


def test_v2_book_record_keeps_every_token() -> None:
    msg = parse_frame(V2_BOOK)
    [(channel, symbol, kind, payload)] = list(messages_of(msg))
    assert (channel, symbol, kind) == ("book", "BTC/USD", "update")
    topic, key, value, seq = Normaliser(run="r1").record(channel, symbol, kind, payload, recv_ns=123)
    record = json.loads(value)
    assert (topic, key, seq) == ("kraken.book.BTC-USD", b"BTC/USD", 1)
    assert record["bids"] == [["63499.0", "0.00005100"]]  # never 63499.0 / 5.1e-05 as floats
    assert record["asks"] == []
    assert record["checksum"] == 3356266482
    assert record["exchange_ts"] == "2026-07-07T23:00:03.977459Z"
    assert record["recv_ns"] == 123
    assert record["run"] == "r1" and record["api"] == "v2" and record["type"] == "update"


def test_v2_trades_are_grouped_per_symbol_one_record_each() -> None:
    messages = list(messages_of(parse_frame(V2_TRADES)))
    assert [(c, s, len(p)) for c, s, _, p in messages] == [("trade", "ETH/USD", 2), ("trade", "BTC/USD", 1)]
    n = Normaliser()
    _, _, value, _ = n.record(*messages[0], recv_ns=1)
    record = json.loads(value)
    assert record["items"][0]["price"] == "1774.14"
    assert record["items"][1]["price"] == "1774"  # an integer token stays as sent
    assert record["items"][0]["trade_id"] == 64175815  # identifiers stay integers
    assert "symbol" not in record["items"][0]
    assert record["exchange_ts"] == "2026-07-07T23:00:04.585590Z"


def test_sequence_counts_per_topic() -> None:
    n = Normaliser()
    seqs = [n.record("book", s, "update", {"bids": [], "asks": []}, 0)[3] for s in ("A/B", "A/B", "C/D", "A/B")]
    assert seqs == [1, 2, 1, 3]
    assert n.seq == {"kraken.book.A-B": 3, "kraken.book.C-D": 1}


def test_v1_book_update_split_over_two_objects_is_one_record() -> None:
    messages = list(messages_of(V1_BOOK_SPLIT))
    assert len(messages) == 1
    channel, symbol, kind, payload = messages[0]
    assert (channel, symbol, kind) == ("book", "XBT/USD", "update")
    _, _, value, _ = Normaliser(api="v1").record(channel, symbol, kind, payload, 0)
    record = json.loads(value)
    assert record["asks"] == [["27120.00000", "4.28732553", "1693415327.935623"]]
    assert record["bids"] == [["27119.90000", "0.00000000", "1693415330.621700"]]
    assert record["checksum"] == 3572756970
    assert record["exchange_ts"] == "1693415330.621700"


def test_v1_trade_frame() -> None:
    frame = [0, [["5541.20000", "0.15850568", "1534614057.321597", "s", "l", ""]], "trade", "XBT/USD"]
    [(channel, symbol, kind, payload)] = list(messages_of(frame))
    _, _, value, _ = Normaliser(api="v1").record(channel, symbol, kind, payload, 0)
    record = json.loads(value)
    assert record["items"] == [
        {"price": "5541.20000", "qty": "0.15850568", "time": "1534614057.321597", "side": "s", "ord_type": "l", "misc": ""}
    ]


def test_control_frames_yield_no_record() -> None:
    for frame in (
        {"channel": "heartbeat"},
        {"channel": "status", "type": "update", "data": [{"system": "online"}]},
        {"method": "subscribe", "result": {"channel": "book", "symbol": "BTC/USD"}, "success": True},
        {"event": "heartbeat"},
        [1, 2],
    ):
        assert list(messages_of(frame)) == []


def test_ticker_numbers_become_text() -> None:
    msg = {"channel": "ticker", "type": "snapshot", "data": [{"symbol": "BTC/USD", "bid": Decimal("63500.1"), "change_pct": Decimal("-0.50")}]}
    [m] = list(messages_of(msg))
    _, _, value, _ = Normaliser().record(*m, recv_ns=0)
    assert json.loads(value)["items"] == [{"bid": "63500.1", "change_pct": "-0.50"}]


def test_fast_book_encoding_equals_the_general_one() -> None:
    """The hot path writes v2 book records by hand; they must be the JSON the general encoder writes."""
    from sandbox.ingest.feed import parse_frame as parse_text_tokens
    from sandbox.ingest.normalise import body

    frame = (
        '{"channel":"book","type":"snapshot","data":[{"symbol":"ETH/USD","bids":[{"price":1774.13,"qty":0.00000050},'
        '{"price":1774,"qty":2}],"asks":[{"price":1774.14,"qty":2.31805112}],"checksum":4114450078,'
        '"timestamp":"2026-07-07T23:00:03.973810Z"}]}'
    )
    for parse in (parse_text_tokens, parse_frame):  # text tokens (the ingest) and Decimals
        [(channel, symbol, kind, payload)] = list(messages_of(parse(frame)))
        _, _, value, _ = Normaliser(run="r").record(channel, symbol, kind, payload, 5)
        fields, stamp = body("v2", channel, payload)
        record = json.loads(value)
        assert record == {"exchange": "kraken", "api": "v2", "channel": "book", "symbol": "ETH/USD", "run": "r",
                          "type": "snapshot", "seq": 1, "exchange_ts": stamp, "recv_ns": 5, **fields}
        assert record["bids"] == [["1774.13", "0.00000050"], ["1774", "2"]]


def test_unsafe_tokens_take_the_escaped_path() -> None:
    payload = {"symbol": "X/Y", "bids": [{"price": '1"]', "qty": "1"}], "asks": [], "checksum": 1}
    _, _, value, _ = Normaliser().record("book", "X/Y", "update", payload, 0)
    assert json.loads(value)["bids"] == [['1"]', "1"]]


def test_tokens_with_escapes_or_control_characters_take_the_escaped_path() -> None:
    for token in ("1\\", "1\n", "1\u0007"):
        payload = {"symbol": "X/Y", "bids": [{"price": token, "qty": "1"}], "asks": [], "checksum": 1}
        _, _, value, _ = Normaliser().record("book", "X/Y", "update", payload, 0)
        assert json.loads(value)["bids"] == [[token, "1"]]
