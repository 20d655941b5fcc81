"""The feed's frame handling without servers: checksums, resubscribe on mismatch, gaps, acks."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest

from sandbox.ingest.feed import Backoff, Feed, endpoint, greeting_id
from sandbox.ingest.normalise import Normaliser
from sandbox.ingest.settings import IngestSettings
from sandbox.ingest.stats import RunStats, Stats
from sandbox.replay.book import OrderBook
from sandbox.replay.protocol import dumps_exact


class FakePublisher:
    def __init__(self) -> None:
        self.records: list[tuple[str, dict[str, Any]]] = []

    def produce(self, topic: str, key: bytes, value: bytes, recv_ns: int, seq: int, frame_ref: int = 0) -> None:
        self.records.append((topic, json.loads(value)))


class Venue:
    """Builds v2 book frames whose checksums are right (from a real OrderBook)."""

    def __init__(self, symbol: str = "BTC/USD") -> None:
        self.symbol = symbol
        self.book = OrderBook(symbol, 10)

    def _frame(self, kind: str, bids: list, asks: list, checksum: int | None = None) -> str:
        if kind == "snapshot":
            self.book.apply_snapshot(bids, asks)
        else:
            self.book.apply_update(bids, asks)
        item = {
            "symbol": self.symbol,
            "bids": [{"price": p, "qty": q} for p, q in bids],
            "asks": [{"price": p, "qty": q} for p, q in asks],
            "checksum": self.book.checksum() if checksum is None else checksum,
            "timestamp": "2026-07-07T23:00:03.000000Z",
        }
        return dumps_exact({"channel": "book", "type": kind, "data": [item]})

    def snapshot(self) -> str:
        return self._frame("snapshot", [(Decimal("100.0"), Decimal("1.5")), (Decimal("99.5"), Decimal("2.0"))],
                           [(Decimal("100.5"), Decimal("1.0")), (Decimal("101.0"), Decimal("3.0"))])

    def update(self, price: str, qty: str, checksum: int | None = None) -> str:
        return self._frame("update", [(Decimal(price), Decimal(qty))], [], checksum)


@pytest.fixture
def feed() -> Feed:
    settings = IngestSettings(symbols=["BTC/USD"], channels=["book", "trade"])
    stats = Stats(run=RunStats("t"))
    f = Feed(settings, FakePublisher(), stats, Normaliser(run="t"))  # type: ignore[arg-type]
    f.want(["book", "trade"], ["BTC/USD"])
    f.ws = object()  # "connected": requests are queued in the outbox
    return f


def test_verified_updates_are_published(feed: Feed) -> None:
    venue = Venue()
    feed.handle((venue.snapshot()), 1)
    feed.handle((venue.update("99.8", "0.5")), 2)
    assert feed.stats.checksums_verified == 2
    assert [r["type"] for _, r in feed.publisher.records] == ["snapshot", "update"]
    assert [r["seq"] for _, r in feed.publisher.records] == [1, 2]


def test_checksum_mismatch_resubscribes_and_drops_until_snapshot(feed: Feed) -> None:
    venue = Venue()
    feed.handle((venue.snapshot()), 1)
    feed.handle((venue.update("99.8", "0.5", checksum=12345)), 2)  # corrupted
    assert feed.stats.checksums_failed == {"BTC/USD": 1}
    assert feed.stats.resubscribes == 1
    assert "BTC/USD" in feed.resyncing
    sent = [json.loads(m) for m in feed.outbox]
    assert [(m["method"], m["params"]["channel"], m["params"]["symbol"]) for m in sent] == [
        ("unsubscribe", "book", ["BTC/USD"]),
        ("subscribe", "book", ["BTC/USD"]),
    ]
    assert sent[1]["params"]["snapshot"] is True
    feed.handle((venue.update("99.7", "0.5")), 3)  # still resyncing: dropped
    assert feed.stats.dropped == 1
    feed.handle(json.dumps({"method": "subscribe", "result": {"channel": "book", "symbol": "BTC/USD", "depth": 10}, "success": True}), 4)
    feed.handle((venue.snapshot()), 5)
    assert "BTC/USD" not in feed.resyncing
    assert feed.stats.run.resyncs_completed == 1
    assert [r["type"] for _, r in feed.publisher.records] == ["snapshot", "snapshot"]
    feed.handle((venue.update("99.9", "0.1")), 6)
    assert feed.stats.checksums_verified == 3  # first snapshot, fresh snapshot, last update


def test_crossed_book_resubscribes(feed: Feed) -> None:
    venue = Venue()
    feed.handle((venue.snapshot()), 1)
    feed.handle((venue.update("101.5", "1.0")), 2)  # a bid above the best ask
    assert feed.stats.crossed == 1
    assert "BTC/USD" in feed.resyncing


def test_trade_gap_is_counted(feed: Feed) -> None:
    def trade(trade_id: int) -> str:
        return json.dumps({"channel": "trade", "type": "update", "data": [
            {"symbol": "BTC/USD", "side": "buy", "price": 1, "qty": 1, "ord_type": "limit", "trade_id": trade_id,
             "timestamp": "2026-07-07T23:00:04.000000Z"}]})

    for i in (10, 11, 15):
        feed.handle(trade(i), 0)
    assert (feed.stats.gaps, feed.stats.missing) == (1, 3)
    assert len(feed.publisher.records) == 3  # trades are published whatever the gap


def test_acks_and_refusals_drive_subscribed(feed: Feed) -> None:
    assert not feed.subscribed
    for channel in ("book", "trade"):
        feed.handle(json.dumps({"method": "subscribe", "result": {"channel": channel, "symbol": "BTC/USD"}, "success": True}), 0)
    assert feed.subscribed
    feed.handle(json.dumps({"method": "subscribe", "error": "Currency pair not supported", "success": False, "symbol": "X/Y"}), 0)
    assert feed.refused == {("", "X/Y"): "Currency pair not supported"}


def test_non_json_frame_is_counted_not_fatal(feed: Feed) -> None:
    feed.handle("not json", 0)
    assert feed.stats.invalid_frames == 1


def test_v1_acks() -> None:
    settings = IngestSettings(symbols=["XBT/USD"], channels=["book"], api_version="v1")
    f = Feed(settings, FakePublisher(), Stats(run=RunStats("t")), Normaliser(api="v1"))  # type: ignore[arg-type]
    f.ws = object()
    f.want(["book"], ["XBT/USD"])
    f.handle(json.dumps({"channelID": 336, "channelName": "book-10", "event": "subscriptionStatus", "pair": "XBT/USD",
                         "status": "subscribed", "subscription": {"depth": 10, "name": "book"}}), 0)
    assert f.subscribed
    assert json.loads(f.outbox[0]) == {"event": "subscribe", "pair": ["XBT/USD"], "subscription": {"name": "book", "depth": 10}, "reqid": 1}


def test_changing_depth_resubscribes_books() -> None:
    settings = IngestSettings(symbols=["A/B"], channels=["book"])
    f = Feed(settings, FakePublisher(), Stats(run=RunStats("t")), Normaliser())  # type: ignore[arg-type]
    f.want(["book", "trade"], ["A/B"])
    f.ws = object()
    added, removed = f.want(["book", "trade"], ["A/B"], depth=100)
    assert added == {("book", "A/B")} and removed == {("book", "A/B")}
    sub = json.loads(f.outbox[-1])
    assert sub["params"]["depth"] == 100


@pytest.mark.parametrize(
    ("base", "api", "url"),
    [
        ("ws://127.0.0.1:18081", "v2", "ws://127.0.0.1:18081/v2"),
        ("ws://127.0.0.1:18081", "v1", "ws://127.0.0.1:18081/"),
        ("ws://127.0.0.1:18081/", "v2", "ws://127.0.0.1:18081/v2"),
        ("wss://ws.kraken.com/v2", "v1", "wss://ws.kraken.com/"),
        ("wss://ws.kraken.com/v2", "v2", "wss://ws.kraken.com/v2"),
        ("ws://h:1/feed/v1", "v2", "ws://h:1/feed/v2"),
        ("ws://h:1/custom", "v2", "ws://h:1/custom"),
    ],
)
def test_endpoint_follows_krakens_layout(base: str, api: str, url: str) -> None:
    assert endpoint(base, api) == url


def test_greeting_ids() -> None:
    assert greeting_id({"channel": "status", "type": "update", "data": [{"connection_id": 42}]}) == 42
    assert greeting_id({"connectionID": 7, "event": "systemStatus"}) == 7
    assert greeting_id({"channel": "heartbeat"}) is None


def test_records_name_their_frame(feed: Feed) -> None:
    feed.conn_serial, feed._ref_base = 3, 3 << 32
    feed.handle(json.dumps({"channel": "status", "type": "update", "data": [{"connection_id": 99}]}), 0)
    assert feed.stats.run.connections == {3: 99}


def test_backoff_doubles_with_jitter_and_resets() -> None:
    import random

    b = Backoff(0.2, 5.0, random.Random(1))
    delays = [b.next() for _ in range(8)]
    ceilings = [min(5.0, 0.2 * 2**i) for i in range(8)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    b.reset()
    assert b.next() <= 0.2


def test_book_frame_with_a_level_that_is_no_number_is_invalid_not_fatal(feed: Feed) -> None:
    feed.handle(Venue().snapshot(), 1)
    bad = '{"channel":"book","type":"update","data":[{"symbol":"BTC/USD","bids":[{"price":"abc","qty":1.0}],"asks":[],"checksum":1}]}'
    feed.handle(bad, 2)
    assert feed.stats.invalid_frames == 1
    assert "BTC/USD" in feed.resyncing  # its book may be half applied: a fresh snapshot is asked for


def test_trade_fast_path_matches_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def trade(symbol: str, trade_id: int, stamp: str, price: str = "63500.1") -> dict[str, Any]:
        return {"symbol": symbol, "side": "buy", "price": price, "qty": "0.01284178", "ord_type": "market",
                "trade_id": trade_id, "timestamp": stamp}

    frames = [
        {"channel": "trade", "type": "snapshot", "data": [trade("BTC/USD", 10, "2026-07-07T23:00:04.000000Z")]},
        {"channel": "trade", "type": "update", "data": [trade("BTC/USD", 11, "2026-07-07T23:00:05.000000Z"),
                                                        trade("BTC/USD", 14, "2026-07-07T23:00:05.100000Z")]},  # gap
        {"channel": "trade", "type": "update", "data": [trade("BTC/USD", 15, "2026-07-07T23:00:05.000000Z")]},  # stamp back
        {"channel": "trade", "type": "update", "data": [trade("ETH/USD", 7, "2026-07-07T23:00:06.000000Z"),
                                                        trade("BTC/USD", 16, "2026-07-07T23:00:06.000000Z")]},  # two symbols
        {"channel": "trade", "type": "update", "data": [trade("BTC/USD", 15, "2026-07-07T23:00:07.000000Z")]},  # id back
        {"channel": "trade", "type": "update", "data": [trade("BTC/USD", 17, "1783465207.5")]},  # not RFC 3339
        {"channel": "trade", "type": "update", "data": []},
        {"channel": "trade", "type": "update", "data": [trade("BTC/USD", 18, "2026-07-07T23:00:08.000000Z"), "junk"]},
    ]
    raws = [json.dumps(f).replace('"63500.1"', "63500.1") for f in frames]  # prices as JSON numbers, like Kraken

    def run(fast: bool) -> tuple[list[Any], tuple[int, ...]]:
        settings = IngestSettings(symbols=["BTC/USD", "ETH/USD"], channels=["trade"])
        f = Feed(settings, FakePublisher(), Stats(run=RunStats("t")), Normaliser(run="t"))  # type: ignore[arg-type]
        calls = []
        original = Feed._v2_trades
        monkeypatch.setattr(Feed, "_v2_trades", lambda self, msg, ns: calls.append(1) or (fast and original(self, msg, ns)))
        for i, raw in enumerate(raws):
            f.handle(raw, 1_000 + i)
        monkeypatch.setattr(Feed, "_v2_trades", original)
        assert len(calls) == len(raws)
        s, r = f.stats, f.stats.run
        return f.publisher.records, (s.gaps, s.missing, s.out_of_order, r.data_frames, r.first_frame_ns, r.last_frame_ns)

    fast_records, fast_counts = run(True)
    general_records, general_counts = run(False)
    assert fast_records == general_records and fast_counts == general_counts
    assert fast_counts[:3] == (1, 2, 2)  # the gap 11 -> 14; a stamp back and an id back
    assert [t for t, _ in fast_records].count("kraken.trade.ETH-USD") == 1
    assert fast_records[1][1]["items"][0]["price"] == "63500.1" and fast_records[1][1]["seq"] == 2


def test_book_stamp_going_back_is_counted_and_still_published(feed: Feed) -> None:
    venue = Venue()
    feed.handle(venue.snapshot(), 1)
    earlier = venue.update("99.8", "0.5").replace("23:00:03.000000Z", "23:00:02.500000Z")
    feed.handle(earlier, 2)
    feed.handle(venue.update("99.7", "0.5"), 3)
    assert (feed.stats.out_of_order, feed.stats.run.out_of_order, feed.stats.checksums_verified) == (1, 1, 3)
    assert [r["exchange_ts"] for _, r in feed.publisher.records] == [
        "2026-07-07T23:00:03.000000Z", "2026-07-07T23:00:02.500000Z", "2026-07-07T23:00:03.000000Z"]
    assert feed.latest_stamp == "2026-07-07T23:00:03.000000Z"
