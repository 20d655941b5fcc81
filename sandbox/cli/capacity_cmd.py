"""``aether-sandbox capacity``: what a cluster must provide for the platform."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from sandbox.cli.output import console, fmt_cpu, fmt_mem, print_json


class OverlayChoice(StrEnum):
    """The seed's deployment overlays, as the CLI offers them."""

    BASE = "base"
    PRODUCTION = "production"


def capacity(
    overlay: Annotated[OverlayChoice, typer.Option(help="Deployment overlay.")] = OverlayChoice.BASE,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Requests, limits and storage per component and in total; undocumented figures are flagged."""
    from sandbox.spec.capacity import capacity as compute_capacity
    from sandbox.spec.loader import default_spec
    from sandbox.spec.models import Overlay

    report = compute_capacity(default_spec(), Overlay(overlay.value))
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"Cluster capacity, {overlay.value} overlay", title_justify="left")
    for column in ("component", "replicas", "CPU requests", "memory requests", "CPU limits", "memory limits", "storage"):
        table.add_column(column, justify="left" if column == "component" else "right", no_wrap=column == "component")
    for row in report.components:
        table.add_row(
            row.name, str(row.replicas),
            fmt_cpu(row.requests.cpu_m), fmt_mem(row.requests.memory_mib),
            fmt_cpu(row.limits.cpu_m), fmt_mem(row.limits.memory_mib),
            f"{row.storage_gib} GiB" if row.storage_gib else "—",
        )
    t = report.totals
    table.add_section()
    table.add_row(
        "[bold]total (documented)[/]", str(t["replicas"]),
        fmt_cpu(t["requests"].cpu_m), fmt_mem(t["requests"].memory_mib),
        fmt_cpu(t["limits"].cpu_m), fmt_mem(t["limits"].memory_mib),
        f"{t['storage_gib']} GiB",
    )
    for kind, figures in report.by_kind.items():
        table.add_row(
            f"[dim]  {kind}[/]", "",
            fmt_cpu(figures["requests"].cpu_m), fmt_mem(figures["requests"].memory_mib),
            fmt_cpu(figures["limits"].cpu_m), fmt_mem(figures["limits"].memory_mib), "",
        )
    console.print(table)
    console.print("— = not documented by the seed; not counted in the totals.")
    for figure, names in report.undocumented.items():
        console.print(f"[yellow]undocumented {figure}:[/] {', '.join(names)}")
    for row in report.components:
        derived = [f for f in row.flags if "taken from" in f or "volume" in f]
        for flag in derived:
            console.print(f"[dim]{row.name}: {flag}[/]")
    if report.sandbox_only:
        console.print(f"[dim]Not counted (sandbox-only components): {', '.join(report.sandbox_only)}[/]")
