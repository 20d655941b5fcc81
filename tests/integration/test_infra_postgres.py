"""Embedded PostgreSQL: SQL round trip, password auth, persistence, root handling."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import psycopg
import pytest

from sandbox.infra.errors import DataDirError
from sandbox.infra.ports import free_port
from sandbox.infra.postgres import EmbeddedPostgres

pytestmark = pytest.mark.integration


def test_sql_round_trip(postgres: EmbeddedPostgres) -> None:
    with psycopg.connect(postgres.dsn()) as conn:
        conn.execute("CREATE TABLE round_trip (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO round_trip VALUES (1, 'hello')")
        assert conn.execute("SELECT note FROM round_trip WHERE id = 1").fetchone() == ("hello",)
        assert conn.execute("SHOW server_version").fetchone()[0].startswith("18.")


def test_password_is_required_and_credentials_are_private(postgres: EmbeddedPostgres) -> None:
    creds = postgres.credentials
    assert postgres.dsn("x").startswith(f"postgresql://{creds.user}:")
    wrong = f"postgresql://{creds.user}:not-the-password@127.0.0.1:{postgres.port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5).close()
    assert stat.S_IMODE(postgres.credentials_path.stat().st_mode) == 0o600
    assert not list(postgres.data_dir.glob(".initdb-password"))


def test_create_database_is_idempotent(postgres: EmbeddedPostgres) -> None:
    assert postgres.create_database("orders") is True
    assert postgres.create_database("orders") is False
    with psycopg.connect(postgres.dsn("orders")) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("orders",)


def test_timescaledb_property_matches_the_server(postgres: EmbeddedPostgres) -> None:
    with psycopg.connect(postgres.dsn()) as conn:
        row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
    assert postgres.timescaledb_available is (row[0] > 0)
    assert postgres.timescaledb_available is False  # the wheel has no TimescaleDB


def test_listens_on_loopback_only_and_not_as_root(postgres: EmbeddedPostgres, listening_addresses) -> None:
    assert listening_addresses(postgres.port) == {"127.0.0.1"}
    assert postgres.pid is not None
    uid = int(Path(f"/proc/{postgres.pid}/status").read_text().split("Uid:")[1].split()[0])
    if os.geteuid() == 0:
        assert uid != 0 and postgres.run_as == "nobody"


def test_data_survives_stop_and_start(server_dir: Path, start_server, assert_nothing_left) -> None:
    server = start_server(EmbeddedPostgres(server_dir, free_port()))
    with psycopg.connect(server.dsn()) as conn:
        conn.execute("CREATE TABLE kept (v text)")
        conn.execute("INSERT INTO kept VALUES ('survives')")
    pid, ports = server.pid, server.ports
    server.stop()
    assert_nothing_left(server, pid, ports)

    server.port = free_port()  # the cluster does not care which port serves it
    server.start()
    with psycopg.connect(server.dsn()) as conn:
        assert conn.execute("SELECT v FROM kept").fetchone() == ("survives",)
    assert server.log_path.read_text().count("--- initdb") == 1  # reused, not re-created


@pytest.mark.skipif(os.geteuid() != 0, reason="only root hands PostgreSQL to 'nobody'")
def test_unreachable_data_dir_is_refused_as_root(infra_root: Path) -> None:
    private = Path(tempfile.mkdtemp(dir=infra_root))  # mode 0700: 'nobody' cannot enter
    server = EmbeddedPostgres(private / "pg", free_port())
    with pytest.raises(DataDirError, match="not reachable by user 'nobody'") as caught:
        server.start()
    assert "world-searchable" in caught.value.hint
    assert server.pid is None
