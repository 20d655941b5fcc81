"""kraken-stream-mirror: the ingest's Kafka topics into the ``marketdata`` time-series tables.

Exactly once, by construction: the Kafka position of every topic is committed
in ``mirror_offsets`` in the same PostgreSQL transaction as the rows made from
the records before it, and every row is keyed by ``(topic, kafka_offset[,
item], ts)`` with ``ON CONFLICT DO NOTHING``.  A rerun resumes at the committed
positions; a crash between two transactions re-reads at most one batch, whose
rows the keys then absorb.  Book topics also commit their book (the levels after
the last committed record), so the top of book continues across runs.

Partitions are assigned, never joined through a consumer group (Tansu's group
join takes seconds), and the end of a topic is found by consuming until nothing
arrives for ``mirror_idle_s``, not by watermarks (Tansu's high watermark is the
last batch's base offset + 1).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

from sandbox.workflows.base import WorkflowResult
from sandbox.workflows.marketdata import ensure_schema
from sandbox.workflows.rows import TopOfBook, ohlc_rows, parse_ts, trade_rows
from sandbox.workflows.settings import WorkflowSettings

log = logging.getLogger("sandbox.workflows.mirror")

CONSUMER = "kraken-stream-mirror"
CHANNELS = ("trade", "book", "ohlc")

_INSERT = {
    "trade": "INSERT INTO market_trades (ts, symbol, price, qty, side, ord_type, trade_id, topic, kafka_offset, item) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
    "book": "INSERT INTO market_top_of_book (ts, symbol, bid_price, bid_qty, ask_price, ask_qty, topic, kafka_offset) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
    "ohlc": "INSERT INTO market_ohlc (ts, symbol, interval_min, open, high, low, close, vwap, volume, trades, topic, kafka_offset, item) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
}
_TABLES = {"trade": "market_trades", "book": "market_top_of_book", "ohlc": "market_ohlc"}
_COMMIT = (
    "INSERT INTO mirror_offsets (consumer, topic, kafka_partition, next_offset, book, updated_at) "
    "VALUES (%s, %s, %s, %s, %s, now()) ON CONFLICT (consumer, topic, kafka_partition) "
    "DO UPDATE SET next_offset = EXCLUDED.next_offset, book = EXCLUDED.book, updated_at = now()"
)


def channel_of(topic: str, prefix: str) -> str | None:
    """``kraken.book.BTC-USD`` -> ``book`` when it is a mirrored channel of ``prefix``, else ``None``."""
    parts = topic.split(".")
    if len(parts) < 3 or parts[0] != prefix or parts[1] not in CHANNELS:
        return None
    return parts[1]


class Batch:
    """Rows and positions accumulated between two commits."""

    def __init__(self) -> None:
        self.rows: dict[str, list[tuple[Any, ...]]] = {c: [] for c in CHANNELS}
        self.positions: dict[tuple[str, int], int] = {}
        self.records = 0

    def __len__(self) -> int:
        return self.records


def mirror(settings: WorkflowSettings, progress: Callable[[str], None] | None = None) -> WorkflowResult:
    """Consume every mirrored topic from its committed position to its end and write the rows."""
    import psycopg
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient  # type: ignore[attr-defined]

    if not settings.kafka_bootstrap:
        raise ValueError("the mirror needs WORKFLOWS_KAFKA_BOOTSTRAP")
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    metadata = admin.list_topics(timeout=15)
    topics = {name: sorted(t.partitions) for name, t in metadata.topics.items() if channel_of(name, settings.topic_prefix)}
    per_table: Counter[str] = Counter()
    per_topic: Counter[str] = Counter()
    with psycopg.connect(settings.marketdata_database_url, connect_timeout=10) as conn:
        hyper = ensure_schema(conn)
        committed = {
            (t, p): (o, b)
            for t, p, o, b in conn.execute(
                "SELECT topic, kafka_partition, next_offset, book FROM mirror_offsets WHERE consumer = %s", (CONSUMER,)
            ).fetchall()
        }
        conn.commit()
        if not topics:
            return WorkflowResult(records=0, detail={"topics": 0, "hypertables": hyper, "note": "no ingest topics on the broker"})
        books: dict[str, TopOfBook] = {}
        assignment = []
        for topic, partitions in sorted(topics.items()):
            for p in partitions:
                offset, book = committed.get((topic, p), (0, None))
                assignment.append(TopicPartition(topic, p, offset))
                if channel_of(topic, settings.topic_prefix) == "book":
                    books[topic] = TopOfBook.from_state("", book)
        consumer = Consumer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"aether-mirror-{uuid.uuid4().hex[:8]}",  # never joined: partitions are assigned
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        })
        try:
            consumer.assign(assignment)
            if progress:
                progress(f"mirroring {len(topics)} topics from their committed positions")
            batch = Batch()
            idle_since = time.monotonic()
            while True:
                messages = consumer.consume(num_messages=500, timeout=0.25)
                if not messages:
                    if time.monotonic() - idle_since >= settings.mirror_idle_s:
                        break
                    continue
                idle_since = time.monotonic()
                for msg in messages:
                    if msg.error():
                        raise RuntimeError(f"Kafka: {msg.error()}")
                    _add(batch, msg.topic(), msg.partition(), msg.offset(), msg.value(), settings.topic_prefix, books, per_topic)
                if len(batch) >= settings.mirror_batch:
                    _commit(conn, batch, books, per_table)
                    batch = Batch()
            _commit(conn, batch, books, per_table)
        finally:
            consumer.close()
    records = sum(per_topic.values())
    return WorkflowResult(
        records=records,
        detail={"topics": len(topics), "records_per_topic": dict(per_topic), "rows_inserted": dict(per_table), "hypertables": hyper},
    )


def _add(batch: Batch, topic: str, partition: int, offset: int, value: bytes, prefix: str,
         books: dict[str, TopOfBook], per_topic: Counter[str]) -> None:
    record = json.loads(value)
    channel = channel_of(topic, prefix)
    if channel == "trade":
        batch.rows["trade"] += trade_rows(record, topic, offset)
    elif channel == "ohlc":
        batch.rows["ohlc"] += ohlc_rows(record, topic, offset)
    elif channel == "book":
        top = books[topic].apply(record)
        ts = parse_ts(record.get("exchange_ts"))
        if top is not None and ts is not None:
            batch.rows["book"].append((ts, record["symbol"], *top, topic, offset))
    batch.positions[(topic, partition)] = offset + 1
    batch.records += 1
    per_topic[topic] += 1


def _commit(conn: Any, batch: Batch, books: dict[str, TopOfBook], per_table: Counter[str]) -> None:
    """Write the batch's rows and positions in one transaction."""
    if not batch.positions:
        return
    with conn.transaction(), conn.cursor() as cur:
        for channel, rows in batch.rows.items():
            if rows:
                cur.executemany(_INSERT[channel], rows)
                per_table[_TABLES[channel]] += max(cur.rowcount, 0)  # rows inserted: conflicts are not counted
        cur.executemany(_COMMIT, [
            (CONSUMER, topic, partition, nxt, json.dumps(books[topic].state()) if topic in books else None)
            for (topic, partition), nxt in batch.positions.items()
        ])
