"""``aether-sandbox demo``: the newcomer's tour, end to end, leaving the platform up.

Brings the platform up on the best runtime available, replays a shipped
Kraken session through the ingest into Kafka (verified), runs the smoke
scenario suite (through the ``scenario`` command, when this build has it) and
the smoke load profile, then prints one summary: what ran, each outcome, where
the reports are, and the URLs of everything left running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, print_json
from sandbox.errors import SandboxError
from sandbox.runtimes.factory import RuntimeChoice

REPO = Path(__file__).resolve().parents[2]
SMOKE_SUITE = REPO / "scenarios" / "smoke"
DEMO_SESSION = "v2-book10-majors"


@dataclass
class Step:
    """One part of the tour and how it went."""

    name: str
    outcome: str
    """``passed``, ``failed`` or ``skipped``."""
    detail: str = ""
    seconds: float = 0.0
    artefacts: list[str] = field(default_factory=list)


def _timed(step: str, work) -> Step:
    started = time.monotonic()
    try:
        outcome, detail, artefacts = work()
    except SandboxError as exc:
        outcome, detail, artefacts = "failed", str(exc) + (f" ({exc.hint})" if exc.hint else ""), []
    return Step(step, outcome, detail, round(time.monotonic() - started, 1), artefacts)


def _scenario_command_exists() -> bool:
    from sandbox.cli.app import app

    return any(getattr(g, "name", None) == "scenario" for g in app.registered_groups)


def _scenarios(name: str, runtime: str, out_dir: Path) -> tuple[str, str, list[str]]:
    if not SMOKE_SUITE.is_dir():
        return "skipped", f"no smoke scenario suite in this checkout ({SMOKE_SUITE} is absent)", []
    if not _scenario_command_exists():
        return "skipped", "this build has no `scenario` command", []
    out_dir.mkdir(parents=True, exist_ok=True)
    junit = out_dir / f"scenarios-{time.strftime('%Y%m%dT%H%M%S')}.xml"
    argv = [sys.executable, "-m", "sandbox.cli", "scenario", "run", str(SMOKE_SUITE), "--name", name,
            "--runtime", runtime, "--junit", str(junit)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, env=os.environ.copy())  # noqa: S603
    last = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()][-1:] or [""]
    return ("passed" if proc.returncode == 0 else "failed"), f"exit {proc.returncode}: {last[0][:200]}", [str(junit)]


def demo(
    name: Annotated[str, typer.Option("--name", "-n", help="Sandbox name.")] = "default",
    runtime: Annotated[RuntimeChoice, typer.Option("--runtime", "-r", help="auto picks the best one available.")] = RuntimeChoice.AUTO,
    session: Annotated[str, typer.Option("--session", help="The shipped session to replay.")] = DEMO_SESSION,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the platform to be healthy.")] = 300.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The tour: up, replay a session, smoke scenarios, smoke load; one summary; the platform stays up.

    Exit code 1 when any part failed (the platform is left up to look at).
    """
    from sandbox.load.runner import RunOptions
    from sandbox.load.runner import run as run_load
    from sandbox.runtimes.factory import choose
    from sandbox.spec.loader import default_spec

    say = (lambda line: None) if as_json else (lambda line: errors.print(f"[dim]{escape(line)}[/]"))
    spec = default_spec()
    rt, why = choose(spec, runtime, name)
    say(f"runtime: {why}")
    steps: list[Step] = []

    def up() -> tuple[str, str, list[str]]:
        status = rt.up([], keep_on_failure=True, timeout=timeout, progress=lambda c, e: say(f"{c}: {e}"))
        bad = [c.name for c in status.components if c.state not in ("running", "unavailable")]
        running = sum(c.state == "running" for c in status.components)
        unavailable = [c.name for c in status.components if c.state == "unavailable"]
        detail = f"{running} components running on the {rt.name} runtime" + (
            f"; unavailable: {', '.join(unavailable)}" if unavailable else "")
        return ("failed" if bad else "passed"), detail + (f"; not healthy: {', '.join(bad)}" if bad else ""), []

    steps.append(_timed("platform up", up))

    def replay() -> tuple[str, str, list[str]]:
        from sandbox.replay.run import ReplayRequest, locate
        from sandbox.replay.run import replay as run_replay

        request = ReplayRequest(session, speed=None)
        report = run_replay(locate(name, rt.name), request, progress=say)
        failures = report.failures()
        detail = (f"{report.frames_played:,} frames, {report.records_consumed:,} records consumed from Kafka, "
                  f"{report.checksums_verified:,} checksums verified, {report.checksums_failed} failed")
        return ("failed" if failures else "passed"), detail + ("; " + "; ".join(failures[:3]) if failures else ""), []

    steps.append(_timed(f"replay {session}", replay))
    from sandbox.runtimes.local.state import StateDir

    demo_dir = (getattr(rt, "state", None) or StateDir.for_name(name)).root / "demo"
    steps.append(_timed("smoke scenario suite", lambda: _scenarios(name, rt.name, demo_dir)))

    load_result: dict[str, Any] = {}

    def load() -> tuple[str, str, list[str]]:
        result = run_load(rt, spec, RunOptions("smoke"), sandbox=name, progress=say)
        load_result.update(result.as_dict())
        failed = [v.service for v in result.verdicts if not v.passed]
        detail = f"{len(result.verdicts) - len(failed)} of {len(result.verdicts)} services within objectives and budget"
        if failed:
            detail += "; failed: " + ", ".join(failed)
        return ("passed" if not failed else "failed"), detail, [str(result.report), str(result.run_dir)]

    steps.append(_timed("smoke load profile", load))
    status = rt.status()
    urls = {c.name: c.url or f"127.0.0.1:{c.port}" for c in status.components if c.state == "running" and c.port}
    failed = any(s.outcome == "failed" for s in steps)
    if as_json:
        print_json({"runtime": rt.name, "why": why, "passed": not failed, "steps": [s.__dict__ for s in steps],
                    "load": load_result, "urls": urls})
    else:
        _print(steps, load_result, urls, name)
    if failed:
        raise typer.Exit(1)


def _print(steps: list[Step], load: dict[str, Any], urls: dict[str, str], name: str) -> None:
    table = Table(title="aether-sandbox demo", title_justify="left")
    for col in ("step", "outcome", "seconds", "detail"):
        table.add_column(col, no_wrap=col != "detail")
    colour = {"passed": "green", "failed": "red", "skipped": "yellow"}
    for s in steps:
        table.add_row(s.name, f"[{colour[s.outcome]}]{s.outcome}[/]", f"{s.seconds:.1f}", escape(s.detail))
    console.print(table)
    for v in load.get("verdicts", []):
        mark = "[green]pass[/]" if v["passed"] else "[red]FAIL[/] " + escape("; ".join(v["reasons"]))
        console.print(f"  load verdict {escape(v['service'])}: {mark}")
    for note in load.get("notes", []):
        console.print(f"[yellow]note:[/] {escape(note)}")
    for s in steps:
        for a in s.artefacts:
            console.print(f"[dim]{escape(s.name)}:[/] {escape(a)}")
    console.print(f"\nThe platform stays up (sandbox '{escape(name)}'). URLs:")
    for component, url in urls.items():
        console.print(f"  {component:24} {escape(url)}")
    console.print("Stop it with `aether-sandbox down" + (f" --name {escape(name)}" if name != "default" else "") + "`.")
