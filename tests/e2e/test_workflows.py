"""The workflows end to end through the CLI, after a real replay through the local platform.

``up`` (ingest, scheduler and what they need) -> ``replay`` a shipped session ->
``workflow run kraken-stream-mirror``: the tables hold exactly the records it
consumed (checked against Kafka by consuming, per topic up to the mirror's
committed offset) and a rerun adds nothing -> the report shows the session's
figures -> ``coingecko-import`` -> ``backup`` / ``restore`` -> ``workflow history``.
One platform for the whole module (about a minute on 2 busy cores).
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import tempfile
import uuid
from collections import Counter
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from sandbox.cli.app import app
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.spec.loader import use_spec_file

pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("workflows")]

runner = CliRunner()
SESSION = "v2-book10-alts-quiet"
SESSION_FILE = Path(__file__).resolve().parents[2] / "fixtures" / "kraken_replays" / f"{SESSION}.ndjson.gz"
SESSION_DAY = "2026-07-07"


def cli(*args: str, code: int = 0) -> dict | list:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout) if "--json" in args and result.stdout.strip() else {}


@pytest.fixture(scope="module")
def sandbox() -> dict:
    """A private sandbox up with the ingest and the scheduler, the session replayed through it."""
    root = Path(tempfile.mkdtemp(prefix="aether-wf-e2e-"))
    root.chmod(0o711)
    mp = pytest.MonkeyPatch()
    mp.setenv("AETHER_SANDBOX_HOME", str(root))
    mp.setenv("AETHER_SANDBOX_PORTS", "dynamic")
    try:
        cli("up", "--runtime", "local", "--json", "kraken-ws-ingest", "workflow-scheduler")
        cli("replay", SESSION, "--max", "--json")
        ports = {c["name"]: c["port"] for c in cli("status", "--runtime", "local", "--json")["components"]}
        pg = EmbeddedPostgres(root / "default" / "components" / "timescaledb", ports["timescaledb"])
        yield {"kafka": f"127.0.0.1:{ports['kafka']}", "marketdata": pg.dsn("marketdata"), "root": root}
    finally:
        runner.invoke(app, ["down", "--runtime", "local", "--volumes"])
        mp.undo()
        use_spec_file(None)
        shutil.rmtree(root, ignore_errors=True)


def consumed_rows(kafka: str, dsn: str) -> tuple[int, Counter, Counter]:
    """Rows the mirror must hold: from Kafka, every record of each topic below the mirror's committed offset.

    Returns (records, rows per table, rows per (table, symbol) on the session's day).
    """
    from confluent_kafka import Consumer, TopicPartition

    with psycopg.connect(dsn) as conn:
        ends = dict(conn.execute("SELECT topic, next_offset FROM mirror_offsets WHERE kafka_partition = 0").fetchall())
    consumer = Consumer({"bootstrap.servers": kafka, "group.id": f"e2e-{uuid.uuid4().hex[:6]}", "enable.auto.commit": False})
    consumer.assign([TopicPartition(t, 0, 0) for t in ends])
    seen = Counter()
    total, per_symbol = Counter(), Counter()
    table = {"book": "market_top_of_book", "trade": "market_trades", "ohlc": "market_ohlc"}
    while sum(seen.values()) < sum(ends.values()):
        messages = consumer.consume(500, timeout=5)
        assert messages, f"Kafka ran dry: {sum(seen.values())} of {sum(ends.values())} records"
        for msg in messages:
            if msg.offset() >= ends[msg.topic()]:
                continue
            seen[msg.topic()] += 1
            record = json.loads(msg.value())
            name = table[record["channel"]]
            n = 1 if record["channel"] == "book" else len(record["items"])
            total[name] += n
            if (record.get("exchange_ts") or "").startswith(SESSION_DAY):
                per_symbol[(name, record["symbol"])] += n
    consumer.close()
    return sum(seen.values()), total, per_symbol


def table_counts(dsn: str) -> Counter:
    with psycopg.connect(dsn) as conn:
        return Counter({t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608 - fixed names
                        for t in ("market_top_of_book", "market_trades", "market_ohlc")})


def manifest() -> dict:
    with gzip.open(SESSION_FILE, "rt") as handle:
        return json.loads(handle.readline())["manifest"]


def test_mirror_report_import_backup_restore_through_the_cli(sandbox: dict) -> None:
    run = cli("workflow", "run", "kraken-stream-mirror", "--json")
    assert run["outcome"] == "ok" and run["records"] > 0
    records, total, per_symbol = consumed_rows(sandbox["kafka"], sandbox["marketdata"])
    assert table_counts(sandbox["marketdata"]) == total
    session = manifest()["symbol_counts"]
    for symbol, frames in session["book"].items():  # one top-of-book row per book record of the session
        assert per_symbol[("market_top_of_book", symbol)] == frames

    again = cli("workflow", "run", "kraken-stream-mirror", "--json")
    assert again["outcome"] == "ok"
    records_after, total_after, _ = consumed_rows(sandbox["kafka"], sandbox["marketdata"])
    assert (records_after, total_after) == (records, total)  # the replay is over: nothing new
    assert table_counts(sandbox["marketdata"]) == total  # and the rerun duplicated nothing
    history = cli("workflow", "history", "kraken-stream-mirror", "--json")
    assert sum(r["records"] for r in history) == records  # every record consumed once over all runs (scheduled ones too)

    report = cli("workflow", "run", "report-generation", "--date", SESSION_DAY, "--json")
    assert report["outcome"] == "ok" and report["detail"]["day"] == SESSION_DAY
    with open(report["detail"]["coverage_csv"]) as handle:
        coverage = {r["symbol"]: r for r in csv.DictReader(handle)}
    assert set(coverage) == set(session["book"])
    for symbol, row in coverage.items():
        assert int(row["book_rows"]) == session["book"][symbol]
        assert int(row["trades"]) == per_symbol[("market_trades", symbol)]
        assert row["first_book"].startswith(SESSION_DAY) and row["trade_id_gaps"] == "0"
    page = Path(report["detail"]["html"]).read_text()
    assert all(symbol in page for symbol in coverage) and Path(report["detail"]["html"]).parent.name == "reports"

    imported = cli("workflow", "run", "coingecko-import", "--json")
    assert imported["outcome"] == "ok" and imported["detail"]["universe_market_caps"] == imported["detail"]["coins"] == 20

    backup = cli("backup", "--json")
    assert {"marketdata", "workflows", "universe", "auth"} <= set(backup["per_database"])
    assert backup["per_database"]["marketdata"]["rows"] >= sum(total.values())
    cli("restore", "latest", code=1)  # the data is there: refused without --yes
    restored = cli("restore", "latest", "--yes", "--json")
    assert restored["mismatches"] == [] and restored["rows"] == backup["rows"]
    assert table_counts(sandbox["marketdata"]) == total

    runs = cli("workflow", "history", "--json")
    assert {"kraken-stream-mirror", "report-generation", "coingecko-import"} <= {r["workflow"] for r in runs}
