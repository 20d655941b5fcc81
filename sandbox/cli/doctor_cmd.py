"""``aether-sandbox doctor``: what each runtime can do on this machine."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape

from sandbox.cli.output import console, print_json
from sandbox.errors import EnvironmentProblem

_MARK = {"ok": "[green]ok  [/]", "warn": "[yellow]warn[/]", "fail": "[red]fail[/]"}


def doctor(as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False) -> None:
    """Check the Docker engine, compose, images, cgroups, embedded binaries and ports."""
    from sandbox.doctor import run_doctor
    from sandbox.spec.loader import default_spec

    report = run_doctor(default_spec())
    if as_json:
        print_json(report.to_dict())
    else:
        for check in report.checks:
            needed = f" [dim](needed by {', '.join(check.needed_by)})[/]" if check.needed_by else ""
            console.print(f"{_MARK[check.status]} {check.name}: {escape(check.detail)}{needed}")
            if check.status != "ok" and check.fix:
                console.print(f"       [dim]fix:[/] {escape(check.fix)}")
        for runtime, ready in report.runtimes.items():
            console.print(f"runtime {runtime}: " + ("[green]can run[/]" if ready else "[red]cannot run[/]"))
        if report.auto:
            console.print(f"--runtime auto picks [bold]{report.auto}[/]: {report.reason}")
    if report.auto is None:
        raise EnvironmentProblem("no runtime can run on this machine", hint="apply the fixes listed for the failed checks")
