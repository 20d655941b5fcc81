"""Benchmark: kraken-stream-mirror throughput, Kafka records to PostgreSQL rows, exactly once.

Embedded PostgreSQL and Tansu; the records are the ingest's own
(``sandbox.ingest.normalise``) made from a shipped session's frames
(``bench-v2-book100-24sym`` by default: 24 symbols, book depth 100, book and
trade), produced to a fresh topic prefix.  One mirror run consumes them all;
the figure excludes the idle wait that ends a run (``--idle``).  A second run
checks that nothing is written twice.  Prints records/s and rows/s.

Usage: python benchmarks/mirror_throughput.py [--session NAME] [--repeat N] [--idle 1.0]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.ports import free_port
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.ingest.normalise import Normaliser, messages_of
from sandbox.replay.book import parse_frame
from sandbox.replay.fixture import read_session
from sandbox.workflows.mirror import mirror
from sandbox.workflows.settings import WorkflowSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "kraken_replays"


def records(session: Path, prefix: str) -> list[tuple[str, bytes, bytes]]:
    normaliser = Normaliser(prefix=prefix, api="v2", run="bench")
    out = []
    for rec in read_session(session).records():
        if rec.dir == "recv":
            for channel, symbol, kind, payload in messages_of(parse_frame(rec.frame)):
                topic, key, value, _ = normaliser.record(channel, symbol, kind, payload, 0)
                out.append((topic, key, value))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", default="bench-v2-book100-24sym")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--idle", type=float, default=1.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="aether-bench-mirror-"))
    root.chmod(0o711)
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> None:
    """The measured runs, on servers under ``root``."""
    from confluent_kafka import Producer

    with EmbeddedPostgres(root / "pg", free_port()) as pg, EmbeddedKafka(root / "kafka", free_port()) as kafka:
        rates, row_rates = [], []
        for _ in range(args.repeat):
            tag = uuid.uuid4().hex[:8]
            pg.create_database(f"md_{tag}")
            recs = records(FIXTURES / f"{args.session}.ndjson.gz", f"b{tag}")
            kafka.create_topics(sorted({t for t, _, _ in recs}), partitions=1)
            producer = Producer(kafka.producer_config())
            for topic, key, value in recs:
                producer.produce(topic, value, key)
                producer.poll(0)
            producer.flush(60)
            settings = WorkflowSettings(workflows_database_url=pg.dsn(f"md_{tag}"), marketdata_database_url=pg.dsn(f"md_{tag}"),
                                        kafka_bootstrap=kafka.bootstrap, topic_prefix=f"b{tag}", mirror_idle_s=args.idle)
            started = time.monotonic()
            result = mirror(settings)
            busy = time.monotonic() - started - args.idle
            rows = sum(result.detail["rows_inserted"].values())
            again = mirror(settings)
            with psycopg.connect(settings.marketdata_database_url) as conn:
                stored = sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                             for t in ("market_trades", "market_top_of_book", "market_ohlc"))
            assert again.records == 0 and stored == rows, (again.records, stored, rows)
            rates.append(result.records / busy)
            row_rates.append(rows / busy)
            print(json.dumps({"records": result.records, "rows": rows, "seconds": round(busy, 2),
                              "records_per_s": round(result.records / busy), "rows_per_s": round(rows / busy)}))
        print(f"median: {statistics.median(rates):,.0f} records/s, {statistics.median(row_rates):,.0f} rows/s "
              f"({args.session}, {args.repeat} runs, rerun wrote nothing)")


if __name__ == "__main__":
    main()
