"""``aether-sandbox load run|capacity``: load profiles against the running platform, judged per service.

Thin: the work is :mod:`sandbox.load.runner` (a run) and :mod:`sandbox.load.capacity`
(the step search), imported when a command runs so ``--help`` stays fast.
Locust itself runs in its own process (it patches the standard library on import).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, print_json
from sandbox.errors import InvalidInput
from sandbox.runtimes.factory import RuntimeChoice

app = typer.Typer(help="Load profiles against the running platform: verdicts per service, capacity per replica.",
                  no_args_is_help=True)

ServiceOption = Annotated[
    list[str] | None, typer.Option("--service", "-s", help="Only these components (repeat, or comma separated).")
]
NameOption = Annotated[str, typer.Option("--name", "-n", help="Sandbox name.")]
RuntimeOption = Annotated[RuntimeChoice, typer.Option("--runtime", "-r", help="Runtime the sandbox runs on.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
WorkersOption = Annotated[int, typer.Option("--workers", min=0, max=64,
                                            help="Locust distributed mode: a master and N worker processes on loopback.")]


def split(values: list[str] | None) -> list[str]:
    """``["a,b", "c"]`` -> ``["a", "b", "c"]``."""
    return [s.strip() for v in values or () for s in v.split(",") if s.strip()]


def parse_duration(text: str | None) -> float | None:
    """``90``, ``90s``, ``2m``, ``1m30s`` -> seconds."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", text)
    if not match or not any(match.groups()):
        raise InvalidInput(f"--duration {text!r}: expected seconds (90, 90s) or minutes (2m, 1m30s)")
    return float(match.group(1) or 0) * 60 + float(match.group(2) or 0)


def _runtime(choice: RuntimeChoice, name: str, quiet: bool):
    from sandbox.runtimes.factory import choose
    from sandbox.spec.loader import default_spec

    spec = default_spec()
    runtime, why = choose(spec, choice, name)
    if not quiet:
        errors.print(f"[dim]runtime:[/] {escape(why)}")
    return runtime, spec


@app.command("run")
def run(
    profile: Annotated[str, typer.Option("--profile", "-p", help="smoke, nominal, peak, soak or step.")] = "smoke",
    services: ServiceOption = None,
    users: Annotated[int | None, typer.Option("--users", help="Users per service in every loaded stage.")] = None,
    duration: Annotated[str | None, typer.Option("--duration", help="Total length (90, 90s, 2m): stages scaled to it.")] = None,
    html: Annotated[Path | None, typer.Option("--html", help="Also write the HTML report here.")] = None,
    workers: WorkersOption = 0,
    replay_speed: Annotated[float | None, typer.Option("--replay-speed", min=0.1,
                                                       help="Pace of the replay driving the ingest (x real time).")] = None,
    name: NameOption = "default",
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    as_json: JsonOption = False,
) -> None:
    """Run a load profile against the running platform and judge every service.

    Per service: CPU and memory against its budget (nominal stages within the
    request, peak stages within the limit), p95/p99 latency and error ratio
    against its objectives, with the reason for every failure.  Exit code 1
    when any verdict fails.  Locust's CSV output, the resource samples and an
    HTML report are kept in the run's directory.
    """
    from sandbox.load.runner import RunOptions
    from sandbox.load.runner import run as run_load

    options = RunOptions(profile, split(services), users, parse_duration(duration), workers, replay_speed)
    rt, spec = _runtime(runtime, name, quiet=as_json)
    result = run_load(rt, spec, options, sandbox=name, progress=None if as_json else _say)
    if html is not None and result.report is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(result.report, html)
    if as_json:
        print_json(result.as_dict() | {"html": str(html) if html else None})
    else:
        print_run(result.as_dict())
        if html is not None:
            console.print(f"report copied to {escape(str(html))}")
    if not result.passed:
        raise typer.Exit(1)


def _say(line: str) -> None:
    errors.print(f"[dim]{escape(line)}[/]")


def _ms(v: Any) -> str:
    return "—" if v is None else f"{v:,.0f}"


def print_run(result: dict[str, Any]) -> None:
    """The verdict table of a run, then every failure's reason and where everything is kept."""
    table = Table(title=f"load run '{result['profile']}' ({result['runtime']}): "
                        + ("[green]PASS[/]" if result["passed"] else "[red]FAIL[/]"), title_justify="left")
    for col in ("service", "phase", "verdict", "req/s", "p95/p99 ms", "errors", "CPU m (req/lim)", "MiB (req/lim)"):
        table.add_column(col, no_wrap=col != "service")
    for v in result["verdicts"]:
        for p in v["phases"] or [{"phase": "—", "stats": {}, "failures": v["reasons"]}]:
            st = p["stats"]
            ok = not p["failures"] and v["phases"]
            table.add_row(
                v["service"], p["phase"], "[green]pass[/]" if ok else "[red]FAIL[/]", _ms(st.get("rps")),
                f"{_ms(st.get('p95_ms'))}/{_ms(st.get('p99_ms'))}", f"{st.get('error_ratio', 0):.1%}" if st else "—",
                f"{_ms(st.get('cpu_mean_m'))} ({v['cpu_request_m']}/{v['cpu_limit_m']})",
                f"{_ms(st.get('memory_max_mib'))} ({v['memory_request_mib']}/{v['memory_limit_mib']})",
            )
    console.print(table)
    for v in result["verdicts"]:
        for reason in v["reasons"]:
            console.print(f"[red]{escape(v['service'])}[/]: {escape(reason)}")
        for note in v["notes"]:
            console.print(f"[dim]{escape(v['service'])}: {escape(note)}[/]")
    for note in result["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
    console.print(f"report: {escape(str(result.get('report')))}\nrun directory (locust CSV, samples): "
                  f"{escape(result['run_dir'])}")


@app.command("capacity")
def capacity(
    services: ServiceOption = None,
    targets: Annotated[list[str] | None, typer.Option("--target", help="SERVICE=RPS: replicas needed for that rate.")] = None,
    step_seconds: Annotated[float, typer.Option("--step-seconds", min=5, help="Length of each step.")] = 20.0,
    workers: WorkersOption = 0,
    name: NameOption = "default",
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    as_json: JsonOption = False,
) -> None:
    """The throughput one replica sustains within its objectives and budget, per service.

    Runs the step profile against each service in turn (rising users until an
    objective or the budget breaks), then reports the highest step that held,
    which resource bound first, and the replicas a target rate needs against
    the replicas the spec documents.
    """
    from sandbox.load.capacity import measure, parse_targets

    wanted = parse_targets(split(targets))
    rt, spec = _runtime(runtime, name, quiet=as_json)
    report = measure(rt, spec, split(services), wanted, step_seconds=step_seconds, workers=workers, sandbox=name,
                     progress=None if as_json else _say)
    if as_json:
        print_json(report)
        return
    print_capacity(report)


def print_capacity(report: dict[str, Any]) -> None:
    """The capacity table, one row per service."""
    table = Table(title="capacity of one replica within objectives and budget", title_justify="left")
    for col in ("service", "sustained req/s", "at p95 / p99 ms", "CPU at it", "CPU/request", "binds first",
                "target req/s", "replicas needed", "spec replicas"):
        table.add_column(col, no_wrap=True)
    for s in report["services"]:
        best = s.get("sustained") or {}
        table.add_row(
            s["service"], _ms(best.get("rps")), f"{_ms(best.get('p95_ms'))} / {_ms(best.get('p99_ms'))}",
            f"{_ms(best.get('cpu_mean_m'))}m of {s['cpu_limit_m']}m",
            "—" if s.get("cpu_ms_per_request") is None else f"{s['cpu_ms_per_request']:.2f} ms",
            escape(s["binds"]), _ms(s.get("target_rps")), _ms(s.get("replicas_needed")),
            f"{s['spec_replicas']['base']}" + (f" (prod {s['spec_replicas']['production']})"
                                              if s['spec_replicas'].get('production') else ""),
        )
    console.print(table)
    for s in report["services"]:
        console.print(f"{escape(s['service'])}: binds first: {escape(s['binds_detail'])}")
    for note in report.get("notes", []):
        console.print(f"[yellow]note:[/] {escape(note)}")
    for s in report["services"]:
        console.print(f"[dim]{escape(s['service'])}: report {escape(str(s.get('report')))}[/]")
