"""``metrics``: the sandbox's key figures (from Prometheus when it runs, else scraped from /metrics)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, print_json
from sandbox.cli.runtime_cmd import JsonOption, RuntimeOption, SandboxOption, _runtime
from sandbox.runtimes.factory import RuntimeChoice


def _f(value: float | None, fmt: str = "{:.2f}", scale: float = 1.0) -> str:
    return "—" if value is None else fmt.format(value * scale)


def _against(value: float | None, limit: int | None, unit: str) -> str:
    if value is None:
        return "—"
    shown = f"{value:.0f}{unit}" if value >= 1 or value == 0 else f"{value:.1f}{unit}"
    return f"{shown} / {limit}{unit}" + (f" ({value / limit:.0%})" if limit else "") if limit else shown


def metrics(
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    name: SandboxOption = "default",
    interval: Annotated[float, typer.Option(help="Seconds between the two scrapes when Prometheus is not running.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Request rates, error ratios, p99, CPU/memory against budget, ingest and OMS figures."""
    from sandbox.errors import InvalidInput
    from sandbox.observability.view import collect

    if interval <= 0:
        raise InvalidInput("--interval must be positive")
    rt = _runtime(runtime, name, quiet=True)
    status = rt.status()
    if not status.up:
        from sandbox.runtimes.base import NotRunning

        raise NotRunning(f"sandbox '{name}' is not up", hint="start it with `aether-sandbox up`")
    view = collect(status, interval=interval)
    if as_json:
        print_json(view.to_dict())
        return
    source = f"Prometheus at {view.prometheus_url}" if view.source == "prometheus" else "direct scrape of /metrics"
    table = Table(title=f"sandbox '{view.sandbox}': key figures ({source})", title_justify="left")
    for column in ("component", "req/s", "5xx ratio", "p99", "CPU / budget", "memory / budget"):
        table.add_column(column, no_wrap=True)
    for c in view.components:
        table.add_row(
            c.component, _f(c.requests_per_s), _f(c.error_ratio, "{:.2%}"), _f(c.p99_s, "{:.0f} ms", 1000),
            _against(c.cpu_m, c.cpu_limit_m, "m"), _against(c.memory_mib, c.memory_limit_mib, " MiB"),
        )
    console.print(table)
    if view.ingest:
        console.print("[bold]ingest:[/] " + ", ".join(f"{k}={_f(v, '{:g}')}" for k, v in view.ingest.items()))
    if view.oms:
        console.print("[bold]oms:[/] " + ", ".join(f"{k}={_f(v, '{:g}')}" for k, v in view.oms.items()))
    for alert in view.alerts:
        console.print(f"[red]firing:[/] {escape(alert['alert'])} {escape(alert['component'])} ({alert['severity']})")
    for note in view.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
