"""``aether-sandbox workflow list | run NAME | history [NAME]``: the data workflows on demand.

Thin: the work is :mod:`sandbox.workflows` (runner, history), imported when a command runs.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, print_json
from sandbox.errors import InvalidInput
from sandbox.runtimes.factory import RuntimeChoice

app = typer.Typer(help="Data workflows: the Kraken stream mirror, the CoinGecko import, reports, backups.", no_args_is_help=True)

NameOption = Annotated[str, typer.Option("--name", "-n", help="Sandbox name.")]
RuntimeOption = Annotated[RuntimeChoice, typer.Option("--runtime", "-r", help="Runtime the sandbox runs on.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Every workflow with its schedule (cron, UTC) and its next run."""
    from datetime import UTC, datetime

    from sandbox.spec.loader import default_spec
    from sandbox.workflows.registry import workflows
    from sandbox.workflows.schedule import Cron

    now = datetime.now(UTC)
    rows = [
        {"name": w.name, "schedule": w.schedule, "cadence": w.cadence, "next_run": Cron.parse(w.schedule).next_after(now).isoformat(),
         "description": w.description}
        for w in workflows(default_spec())
    ]
    if as_json:
        print_json(rows)
        return
    table = Table(title="workflows (schedules in UTC)", title_justify="left")
    for column in ("name", "schedule", "cadence", "next run"):
        table.add_column(column, no_wrap=True)
    table.add_column("description")
    for r in rows:
        table.add_row(r["name"], r["schedule"], r["cadence"], r["next_run"][:16].replace("T", " "), escape(r["description"]))
    console.print(table)


@app.command("run")
def run(
    workflow: Annotated[str, typer.Argument(help="Workflow name (`aether-sandbox workflow list`).")],
    day: Annotated[
        datetime | None,
        typer.Option("--date", formats=["%Y-%m-%d"], help="report-generation: the day to report (UTC; default: the latest day with activity)."),
    ] = None,
    name: NameOption = "default",
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    as_json: JsonOption = False,
) -> None:
    """Run a workflow now against the running sandbox and record it in the run history.

    Exit code 1 when the run failed or only partly succeeded (the report says which items failed and why).
    """
    from sandbox.spec.loader import default_spec
    from sandbox.workflows import runner
    from sandbox.workflows.locate import in_network_scheduler, run_in_scheduler, settings_for
    from sandbox.workflows.registry import lookup

    defn = lookup(default_spec(), workflow)
    if (scheduler := in_network_scheduler(name, runtime.value)) is not None:  # docker: the run happens in the network
        if day is not None:
            raise InvalidInput("--date is not supported with the docker runtime (the scheduler picks the day)")
        row = run_in_scheduler(scheduler, defn.name)
    else:
        settings = settings_for(name, runtime.value)
        if day is not None:
            settings = settings.model_copy(update={"report_date": day.date()})

        def progress(line: str) -> None:
            if not as_json:
                errors.print(f"[dim]{escape(line)}[/]")

        row = runner.run(defn, settings, "cli", progress)
    if as_json:
        print_json(row)
    else:
        print_run(row)
    if row["outcome"] != "ok":
        raise typer.Exit(1)


@app.command("history")
def history_(
    workflow: Annotated[str | None, typer.Argument(help="Only this workflow.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Runs to show.", min=1, max=1000)] = 20,
    name: NameOption = "default",
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    as_json: JsonOption = False,
) -> None:
    """The latest runs, newest first: trigger, start, end, outcome, records processed, error."""
    import psycopg

    from sandbox.workflows import history, runner
    from sandbox.workflows.locate import settings_for

    settings = settings_for(name, runtime.value)
    runner.ensure_databases(settings, (runner.WORKFLOWS_DATABASE,))
    with psycopg.connect(settings.workflows_database_url, connect_timeout=10) as conn:
        history.ensure_history(conn)
        rows = history.runs(conn, workflow, limit)
    if as_json:
        print_json(rows)
        return
    table = Table(title="workflow runs (newest first)", title_justify="left")
    for column in ("id", "workflow", "trigger", "started", "duration", "outcome", "records", "error"):
        table.add_column(column, justify="right" if column in ("id", "records", "duration") else "left")
    for r in rows:
        table.add_row(
            str(r["id"]), r["workflow"], r["trigger"], (r["started_at"] or "")[:19].replace("T", " "),
            "—" if r["duration_s"] is None else f"{r['duration_s']:.1f} s", _outcome(r["outcome"]), f"{r['records']:,}",
            escape((r["error"] or "")[:80]),
        )
    console.print(table)


def _outcome(outcome: str) -> str:
    return {"ok": "[green]ok[/]", "partial": "[yellow]partial[/]", "failed": "[red]failed[/]"}.get(outcome, outcome)


def print_run(row: dict[str, Any]) -> None:
    """One run for a person: outcome, records, the workflow's details and any error."""
    duration = "—" if row.get("duration_s") is None else f"{row['duration_s']:.1f} s"
    console.print(f"{row['workflow']} run {row['id']}: {_outcome(row['outcome'])}, {row['records']:,} records in {duration}")
    detail = row.get("detail") or {}
    for key, value in detail.items():
        if key == "failures":
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        console.print(f"  [dim]{escape(key)}:[/] {escape(text)}")
    for failure in detail.get("failures") or ():
        console.print(f"  [yellow]failed:[/] {escape(failure.get('item', '?'))}: {escape(failure.get('error', ''))}")
    if row.get("error"):
        console.print(f"  [red]error:[/] {escape(row['error'])}")
