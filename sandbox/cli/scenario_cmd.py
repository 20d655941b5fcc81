"""``aether-sandbox scenario run|validate|list|schema``: QA scenario suites against the running platform.

Thin: the work is :mod:`sandbox.scenarios` (loader, runner, report), imported
when a command runs so ``--help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, print_json
from sandbox.errors import CheckFailed
from sandbox.runtimes.factory import RuntimeChoice

app = typer.Typer(help="QA scenario suites (scenarios/): run them against the running platform, validate, list.")

Paths = Annotated[list[Path] | None, typer.Argument(help="Scenario files or directories (default: scenarios/).")]
Keyword = Annotated[str | None, typer.Option("-k", help="Only scenarios whose name, tags or path match "
                                                         "(words with and / or / not; globs allowed).")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _paths(paths: list[Path] | None) -> list[Path]:
    from sandbox.scenarios import SCENARIOS_DIR

    return list(paths) if paths else [SCENARIOS_DIR]


@app.command("run")
def run(
    paths: Paths = None,
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    keyword: Keyword = None,
    parallel: Annotated[int, typer.Option("--parallel", "-p", min=1, max=16,
                                          help="Scenarios at once (those sharing a pair or the platform wait).")] = 1,
    name: Annotated[str, typer.Option("--name", "-n", help="Sandbox name.")] = "default",
    runtime: Annotated[RuntimeChoice, typer.Option("--runtime", "-r", help="Runtime the sandbox runs on.")] = RuntimeChoice.AUTO,
    as_json: JsonOption = False,
) -> None:
    """Run scenarios against the running platform; exit code 1 when any fails.

    Each scenario gets its own accounts, API keys, user, strategies and ids; a
    failure shows the expectation, what happened and the relevant events.
    """
    from sandbox.scenarios.loader import load_all
    from sandbox.scenarios.platform import connect
    from sandbox.scenarios.report import explain, write_junit
    from sandbox.scenarios.runner import run_suite

    files = load_all(_paths(paths), keyword)  # bad files are reported before the platform is touched
    if not files:
        raise CheckFailed("no scenario matched", hint="check the paths and -k")
    platform = connect(name, runtime.value)

    def progress(result) -> None:  # noqa: ANN001
        if not as_json:
            mark = {"passed": "[green]pass[/]", "failed": "[red]FAIL[/]", "error": "[red]ERROR[/]"}[result.outcome]
            errors.print(f"{mark} {escape(result.name)} [dim]({result.seconds:.2f} s)[/]")

    suite = run_suite(platform, files, parallel=parallel, progress=progress)
    if junit is not None:
        write_junit(suite, junit)
    if as_json:
        print_json(suite.as_dict())
    else:
        for result in suite.results:
            if result.outcome == "passed":
                continue
            console.print(f"\n[bold red]{escape(result.name)}[/] [dim]({escape(result.path)})[/]")
            console.print(escape(result.error) if result.outcome == "error" else escape(explain(result.failures)))
        colour = "green" if suite.ok else "red"
        console.print(f"\n[{colour}]{suite.passed} passed[/], {suite.failed} failed, {suite.errors} errors "
                      f"of {len(suite.results)} scenarios in {suite.seconds:.1f} s (parallel {parallel})"
                      + (f"; JUnit XML in {junit}" if junit else ""))
    if not suite.ok:
        raise typer.Exit(1)


@app.command("validate")
def validate(paths: Paths = None, as_json: JsonOption = False) -> None:
    """Check scenario files without running them (problems as file:line field: message; exit code 2)."""
    from sandbox.scenarios.loader import load_all

    files = load_all(_paths(paths))
    if as_json:
        print_json({"valid": len(files), "files": [str(f.path) for f in files]})
        return
    console.print(f"[green]{len(files)} scenario file(s) valid[/]")


@app.command("list")
def list_(paths: Paths = None, keyword: Keyword = None, as_json: JsonOption = False) -> None:
    """The scenarios under PATHS: name, suite, tags, steps and expectations."""
    from sandbox.scenarios.loader import load_all

    files = load_all(_paths(paths), keyword)
    rows = [{"name": f.name, "suite": f.suite, "path": str(f.path), "tags": f.scenario.tags,
             "steps": len(f.scenario.steps), "expectations": len(f.scenario.expect),
             "description": f.scenario.description} for f in files]
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"{len(rows)} scenarios", title_justify="left")
    for column in ("suite", "name", "tags", "steps", "expect"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["suite"], escape(r["name"]), ", ".join(r["tags"]), str(r["steps"]), str(r["expectations"]))
    console.print(table)


@app.command("schema")
def schema(write: Annotated[bool, typer.Option("--write", help="Update scenarios/scenario.schema.json.")] = False) -> None:
    """Print the scenario JSON schema (generated from the models), or write the committed copy."""
    from sandbox.scenarios import SCHEMA_PATH, schema_text

    text = schema_text()
    if write:
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        console.print(f"wrote {SCHEMA_PATH}")
    else:
        print(text, end="")
