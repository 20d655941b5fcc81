"""kraken-stream-mirror against a real broker and PostgreSQL: exactly the records produced, no duplicates.

The records are the ingest's own (``sandbox.ingest.normalise``) made from a
shipped replay session's frames, produced to topics under a prefix of this test.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.ingest.normalise import Normaliser, messages_of
from sandbox.replay.book import parse_frame
from sandbox.replay.fixture import read_session
from sandbox.spec.loader import default_spec
from sandbox.workflows import runner
from sandbox.workflows.registry import lookup
from sandbox.workflows.settings import WorkflowSettings

pytestmark = pytest.mark.integration

SESSION = Path(__file__).resolve().parents[2] / "fixtures" / "kraken_replays" / "v2-book10-alts-quiet.ndjson.gz"


def ingest_records(prefix: str, limit: int | None = None) -> list[tuple[str, bytes, bytes]]:
    """The ingest's records of the session's data frames: ``(topic, key, value)``."""
    normaliser = Normaliser(prefix=prefix, api="v2", run="it")
    out = []
    for rec in read_session(SESSION).records():
        if rec.dir != "recv":
            continue
        for channel, symbol, kind, payload in messages_of(parse_frame(rec.frame)):
            topic, key, value, _ = normaliser.record(channel, symbol, kind, payload, 0)
            out.append((topic, key, value))
    return out[:limit] if limit else out


def produce(kafka: EmbeddedKafka, records: list[tuple[str, bytes, bytes]]) -> None:
    from confluent_kafka import Producer

    kafka.create_topics(sorted({t for t, _, _ in records}), partitions=1)
    producer = Producer(kafka.producer_config())
    for topic, key, value in records:
        producer.produce(topic, value, key)
        producer.poll(0)
    assert producer.flush(30) == 0


def mirrored(records: list[tuple[str, bytes, bytes]]) -> int:
    """How many of ``records`` the mirror consumes (ticker topics are not mirrored)."""
    return sum(1 for topic, _, _ in records if topic.split(".")[1] in ("book", "trade", "ohlc"))


def expected_rows(records: list[tuple[str, bytes, bytes]]) -> Counter[str]:
    """Rows the mirror must write: one per book record, one per trade or bar item."""
    rows: Counter[str] = Counter()
    for topic, _, value in records:
        record = json.loads(value)
        channel = topic.split(".")[1]
        if channel == "book":
            rows["market_top_of_book"] += 1
        elif channel == "trade":
            rows["market_trades"] += len(record["items"])
        elif channel == "ohlc":
            rows["market_ohlc"] += len(record["items"])
    return rows


@pytest.fixture
def settings(postgres: EmbeddedPostgres, kafka_broker: EmbeddedKafka) -> WorkflowSettings:
    tag = uuid.uuid4().hex[:8]
    for db in (f"wf_{tag}", f"md_{tag}"):
        postgres.create_database(db)
    return WorkflowSettings(
        postgres_url=postgres.dsn(), workflows_database_url=postgres.dsn(f"wf_{tag}"),
        marketdata_database_url=postgres.dsn(f"md_{tag}"), kafka_bootstrap=kafka_broker.bootstrap,
        topic_prefix=f"m{tag}", mirror_idle_s=1.5,
    )


def table_counts(settings: WorkflowSettings) -> Counter[str]:
    with psycopg.connect(settings.marketdata_database_url) as conn:
        return Counter({t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
                        for t in ("market_trades", "market_top_of_book", "market_ohlc")})


def test_mirror_writes_exactly_the_records_and_a_rerun_adds_nothing(settings: WorkflowSettings, kafka_broker: EmbeddedKafka) -> None:
    defn = lookup(default_spec(), "kraken-stream-mirror")
    records = ingest_records(settings.topic_prefix)
    first, rest = records[: len(records) // 2], records[len(records) // 2:]
    produce(kafka_broker, first)

    run1 = runner.run(defn, settings, "cli")
    assert run1["outcome"] == "ok", run1
    assert run1["records"] == mirrored(first)
    assert table_counts(settings) == expected_rows(first)

    # a rerun with nothing new writes nothing; then the rest arrives and only the rest is mirrored
    run2 = runner.run(defn, settings, "cli")
    assert run2["outcome"] == "ok" and run2["records"] == 0
    produce(kafka_broker, rest)
    run3 = runner.run(defn, settings, "cli")
    assert run3["records"] == mirrored(rest)
    want = expected_rows(records)
    assert table_counts(settings) == want
    assert sum(want.values()) > len(records) / 2  # the session has books, trades and bars

    # forgetting the committed offsets re-reads everything: the keys absorb every row
    with psycopg.connect(settings.marketdata_database_url) as conn:
        conn.execute("DELETE FROM mirror_offsets")
    run4 = runner.run(defn, settings, "cli")
    assert run4["records"] == mirrored(records)
    assert set(run4["detail"]["rows_inserted"].values()) == {0}
    assert table_counts(settings) == want


def test_top_of_book_continues_across_runs(settings: WorkflowSettings, kafka_broker: EmbeddedKafka) -> None:
    """A run that resumes mid-book gets the same tops as one run over everything (the book is committed too)."""
    from sandbox.workflows.rows import TopOfBook

    defn = lookup(default_spec(), "kraken-stream-mirror")
    records = [r for r in ingest_records(settings.topic_prefix) if ".book." in r[0]][:200]
    produce(kafka_broker, records[:77])
    runner.run(defn, settings, "cli")
    produce(kafka_broker, records[77:])
    runner.run(defn, settings, "cli")

    books: dict[str, TopOfBook] = {}
    want = []
    for topic, _, value in records:
        record = json.loads(value)
        top = books.setdefault(topic, TopOfBook(record["symbol"])).apply(record)
        want.append((record["symbol"], *top))
    with psycopg.connect(settings.marketdata_database_url) as conn:
        got = conn.execute(
            "SELECT symbol, bid_price::text, bid_qty::text, ask_price::text, ask_qty::text FROM market_top_of_book "
            "ORDER BY topic, kafka_offset").fetchall()
    assert sorted(got) == sorted(want)
    assert len(got) == 200
