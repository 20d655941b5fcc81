"""``aether-sandbox spec``: show the platform spec, or validate an edited copy."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sandbox.cli.output import console, fmt_cpu, fmt_mem, print_json

if TYPE_CHECKING:
    from sandbox.spec.models import PlatformSpec

app = typer.Typer(help="The platform spec: every component with its documented figures.", no_args_is_help=False)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _figures(cpu: int | None, mem: int | None) -> str:
    if cpu is None and mem is None:
        return "—"
    return f"{fmt_cpu(cpu)} / {fmt_mem(mem)}"


def spec_to_dict(spec: PlatformSpec) -> dict:
    """The spec as JSON-ready data, each component with its derived budget."""
    from sandbox.spec.budget import budget_of
    data = spec.model_dump(mode="json")
    for entry, component in zip(data["components"], spec.components, strict=True):
        budget = budget_of(component)
        entry["budget"] = {
            dim: {"request": b.request, "limit": b.limit, "basis": b.basis.value}
            for dim, b in (("cpu_m", budget.cpu_m), ("memory_mib", budget.memory_mib))
        }
    return data


def _table(spec: PlatformSpec) -> Table:
    from sandbox.spec.budget import budget_of
    table = Table(title=f"{spec.platform} platform spec ({len(spec.components)} components)", title_justify="left")
    for column in ("component", "kind", "replicas", "requests", "limits", "budget", "storage"):
        table.add_column(column, no_wrap=column in ("component", "requests", "limits", "budget"))
    table.add_column("depends on", ratio=1)
    for c in spec.components:
        budget = budget_of(c)
        replicas = str(c.replicas.base) + (f" (prod {c.replicas.production})" if c.replicas.production else "")
        storage = ", ".join(
            f"{v.size_gib} GiB" if v.size_gib else ("ephemeral" if not v.persistent else "size undocumented")
            for v in c.storage
        )
        if c.backup:
            storage += f" + {c.backup.volume_gib} GiB backup ({c.backup.cadence})"
        marker = "" if budget.cpu_m.documented and budget.memory_mib.documented else " [yellow]*[/]"
        table.add_row(
            c.name + (" [dim](sandbox)[/]" if c.origin == "sandbox" else ""),
            c.kind.value,
            replicas,
            _figures(c.requests.cpu_m, c.requests.memory_mib),
            _figures(c.limits.cpu_m, c.limits.memory_mib),
            _figures(budget.cpu_m.limit, budget.memory_mib.limit) + marker,
            storage or "—",
            ", ".join(c.depends_on) or "—",
        )
    return table


@app.callback(invoke_without_command=True)
def show(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Show every component: kind, replicas, requests, limits, budget, storage, dependencies."""
    from sandbox.spec.loader import default_spec

    if ctx.invoked_subcommand is not None:
        return
    spec = default_spec()
    if as_json:
        print_json(spec_to_dict(spec))
        return
    console.print(_table(spec))
    console.print("[yellow]*[/] budget assigned by the sandbox where the seed documents no figure")
    console.print(f"[bold]Budget policy:[/] {spec.budget_policy.summary}")


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="The spec file to check.", exists=False)],
    as_json: JsonOption = False,
) -> None:
    """Check a user-edited spec; every problem is reported as `file:line location: message`."""
    from sandbox.spec.loader import load_spec

    spec = load_spec(file)
    if as_json:
        print_json({"file": str(file), "valid": True, "components": len(spec.components)})
    else:
        console.print(f"[green]valid:[/] {file} ({len(spec.components)} components, {len(spec.workflows)} workflows)")
