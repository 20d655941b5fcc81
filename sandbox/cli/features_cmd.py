"""``aether-sandbox features``: the Feast feature store (install, materialise, query)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, print_json

app = typer.Typer(help="The Feast feature store: install it, materialise features, read them from the feature server.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
NameOption = Annotated[str, typer.Option("--name", "-n", help="Sandbox name.")]
RuntimeOption = Annotated[str, typer.Option("--runtime", help="auto, local or docker.")]


def _progress(as_json: bool):
    def progress(line: str) -> None:
        if not as_json:
            errors.print(f"[dim]{escape(line)}[/]")

    return progress


@app.command("install")
def install(as_json: JsonOption = False) -> None:
    """Create Feast's own virtualenv now (the feast component otherwise does it on first start)."""
    from sandbox.features import venv

    path = venv.ensure_feast(_progress(as_json))
    if as_json:
        print_json({"venv": str(path), "feast": venv.FEAST_VERSION})
    else:
        console.print(f"feast {venv.FEAST_VERSION} ready in {path}")


@app.command("materialize")
def materialize(name: NameOption = "default", runtime: RuntimeOption = "auto", as_json: JsonOption = False) -> None:
    """Export the features from the mirrored market data and the OMS, and write them to the online store."""
    from sandbox.features.locate import settings_for
    from sandbox.features.materialize import materialize as run

    report = run(settings_for(name, runtime), _progress(as_json))
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"materialised in {report.seconds:.1f} s")
    for column in ("feature view", "rows", "event time span", "note"):
        table.add_column(column)
    for view, entry in report.views.items():
        span = f"{entry['first']} .. {entry['last']}" if entry.get("rows") else ""
        table.add_row(view, str(entry.get("rows", 0)), span, entry.get("note", ""))
    console.print(table)
