"""``aether-sandbox backup`` and ``aether-sandbox restore BACKUP``: every platform database, verified.

Thin: the work is :mod:`sandbox.workflows.backup`, imported when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sandbox.cli.output import console, errors, print_json
from sandbox.runtimes.factory import RuntimeChoice

NameOption = Annotated[str, typer.Option("--name", "-n", help="Sandbox name.")]
RuntimeOption = Annotated[RuntimeChoice, typer.Option("--runtime", "-r", help="Runtime the sandbox runs on.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _progress(as_json: bool):  # noqa: ANN202 - a local callback
    def progress(line: str) -> None:
        if not as_json:
            errors.print(f"[dim]{escape(line)}[/]")

    return progress


def backup(name: NameOption = "default", runtime: RuntimeOption = RuntimeChoice.AUTO, as_json: JsonOption = False) -> None:
    """Dump every platform database (pg_dump custom format) into a new backup directory and print its path.

    The backup's manifest holds each table's row count and checksum; `restore` verifies them.
    """
    from sandbox.workflows import backup as job
    from sandbox.workflows.locate import settings_for

    settings = settings_for(name, runtime.value)
    directory = job.backup(settings, _progress(as_json))
    info = job.summary(directory)
    if as_json:
        print_json(info)
        return
    console.print(f"backup of {info['databases']} databases, {info['tables']} tables, {info['rows']:,} rows "
                  f"({info['bytes'] / 1024:,.0f} KiB):")
    print(info["path"])


def restore(
    backup_name: Annotated[str, typer.Argument(metavar="BACKUP", help="A backup directory, its name under the sandbox's backups, or 'latest'.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Overwrite databases that hold data.")] = False,
    name: NameOption = "default",
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    as_json: JsonOption = False,
) -> None:
    """Restore every database of a backup (pg_restore) and verify each table's rows against the backup.

    Refuses (exit 1) without --yes when a database to restore holds rows.
    """
    from sandbox.workflows import backup as job
    from sandbox.workflows.locate import settings_for

    settings = settings_for(name, runtime.value)
    directory = job.resolve(settings, backup_name)
    report = job.restore(settings, directory, yes=yes, progress=_progress(as_json))
    if as_json:
        print_json(report)
        return
    console.print(f"restored {len(report['databases'])} databases from {escape(report['path'])}: "
                  f"{report['rows']:,} rows, every table verified against the backup")
