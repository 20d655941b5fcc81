"""Backup and restore round trip: every row of every database comes back, checked row by row.

Each test runs its own PostgreSQL clusters (a backup covers every database of
the server, so the session's shared server is not touched).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from sandbox.infra.ports import free_port
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.workflows import backup as job
from sandbox.workflows.marketdata import ensure_schema
from sandbox.workflows.settings import WorkflowSettings

pytestmark = pytest.mark.integration

DATABASES = ("marketdata", "oms", "universe")


def settings_of(pg: EmbeddedPostgres, backup_dir: Path) -> WorkflowSettings:
    return WorkflowSettings(workflows_database_url=pg.dsn("workflows"), marketdata_database_url=pg.dsn("marketdata"), backup_dir=backup_dir)


def fill(pg: EmbeddedPostgres) -> None:
    """Tables with awkward values: numerics, jsonb, bytea, newlines, NULLs, an append-only trigger, a sequence."""
    for db in DATABASES:
        pg.create_database(db)
    with psycopg.connect(pg.dsn("marketdata")) as conn:
        ensure_schema(conn)
        conn.execute(
            "INSERT INTO market_trades SELECT '2026-07-07 23:00Z'::timestamptz + g * interval '1 ms', 'BTC/USD', "
            "63500.1 + g / 10.0, 0.00000001 * g, CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END, NULL, g, 'kraken.trade.BTC-USD', g, 0 "
            "FROM generate_series(1, 3000) g")
        conn.execute("INSERT INTO mirror_offsets (consumer, topic, kafka_partition, next_offset, book) VALUES "
                     "('kraken-stream-mirror', 'kraken.book.BTC-USD', 0, 42, '{\"bids\": [[\"1.0\", \"2\"]]}')")
    with psycopg.connect(pg.dsn("oms")) as conn:
        conn.execute("CREATE TABLE fills (id bigserial PRIMARY KEY, note text, raw bytea, detail jsonb, price numeric(38, 18))")
        conn.execute("INSERT INTO fills (note, raw, detail, price) SELECT "
                     "CASE WHEN g % 7 = 0 THEN NULL ELSE E'line one\\nline \"two\"\\t' || g END, "
                     "decode(md5(g::text), 'hex'), jsonb_build_object('g', g, 'tags', jsonb_build_array('a', g)), g / 3.0 "
                     "FROM generate_series(1, 500) g")
    with psycopg.connect(pg.dsn("universe")) as conn:
        conn.execute("CREATE TABLE audit (id bigserial PRIMARY KEY, what text NOT NULL)")
        conn.execute("CREATE FUNCTION no_change() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'append-only'; END $$")
        conn.execute("CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION no_change()")
        conn.execute("INSERT INTO audit (what) SELECT 'listed ' || g FROM generate_series(1, 50) g")


def snapshot(pg: EmbeddedPostgres) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    """Every row of every user table of the test's databases, fetched and sorted (independent of the manifest)."""
    out = {}
    for db in DATABASES:
        with psycopg.connect(pg.dsn(db)) as conn:
            tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
            out[db] = {t: sorted(conn.execute(f'SELECT * FROM "{t}"').fetchall(), key=repr) for t in tables}  # noqa: S608
    return out


@pytest.fixture
def clusters(start_server: Callable[[EmbeddedPostgres], EmbeddedPostgres], server_dir: Path) -> Callable[[str], EmbeddedPostgres]:
    server_dir.chmod(0o711)  # PostgreSQL runs as 'nobody' when we are root

    def make(name: str) -> EmbeddedPostgres:
        directory = server_dir / name
        directory.mkdir()
        directory.chmod(0o711)
        return start_server(EmbeddedPostgres(directory, free_port()))
    return make


def test_backup_then_restore_over_changed_data_restores_every_row(clusters: Callable[[str], EmbeddedPostgres], tmp_path: Path) -> None:
    pg = clusters("a")
    fill(pg)
    before = snapshot(pg)
    settings = settings_of(pg, tmp_path / "backups")

    directory = job.backup(settings)
    manifest = json.loads((directory / "manifest.json").read_text())
    assert set(manifest["databases"]) == set(DATABASES)
    assert manifest["databases"]["marketdata"]["tables"]["public.market_trades"]["rows"] == 3000
    assert manifest["databases"]["oms"]["tables"]["public.fills"]["rows"] == 500
    assert all((directory / d["file"]).stat().st_size > 0 for d in manifest["databases"].values())

    with psycopg.connect(pg.dsn("marketdata")) as conn:  # the data changes after the backup
        conn.execute("DELETE FROM market_trades WHERE trade_id % 3 = 0")
        conn.execute("UPDATE mirror_offsets SET next_offset = 99")
        conn.execute("DROP TABLE market_ohlc")
    with psycopg.connect(pg.dsn("oms")) as conn:
        conn.execute("UPDATE fills SET price = price + 1 WHERE id < 10")
        conn.execute("INSERT INTO fills (note) VALUES ('after the backup')")
    with psycopg.connect(pg.dsn("universe")) as conn:
        conn.execute("INSERT INTO audit (what) VALUES ('after the backup')")
    assert snapshot(pg) != before

    with pytest.raises(job.RestoreRefused) as refused:
        job.restore(settings, directory)
    assert "marketdata" in str(refused.value) and "--yes" in refused.value.hint

    report = job.restore(settings, directory, yes=True)
    assert report["mismatches"] == []
    assert report["rows"] == sum(t["rows"] for d in manifest["databases"].values() for t in d["tables"].values())
    assert snapshot(pg) == before
    with psycopg.connect(pg.dsn("oms")) as conn:  # sequences come back too: the next id follows the backup's
        assert conn.execute("INSERT INTO fills (note) VALUES ('next') RETURNING id").fetchone()[0] == 501


def test_restore_into_an_empty_server_recreates_every_database(clusters: Callable[[str], EmbeddedPostgres], tmp_path: Path) -> None:
    source, target = clusters("src"), clusters("dst")
    fill(source)
    directory = job.backup(settings_of(source, tmp_path / "b"))
    report = job.restore(settings_of(target, tmp_path / "b"), directory)  # nothing to overwrite: no --yes needed
    assert set(report["databases"]) == set(DATABASES)
    assert snapshot(target) == snapshot(source)


def test_scheduled_backup_keeps_the_newest(clusters: Callable[[str], EmbeddedPostgres], tmp_path: Path) -> None:
    pg = clusters("k")
    pg.create_database("marketdata")
    settings = settings_of(pg, tmp_path / "b").model_copy(update={"backup_keep": 2})
    names = [job.scheduled_backup(settings).detail["path"] for _ in range(3)]
    assert [p.name for p in job.list_backups(tmp_path / "b")] == [Path(n).name for n in names[1:]]
    assert job.resolve(settings, "latest") == Path(names[-1])
