"""The ``aether-sandbox`` command: global options and the one error boundary.

Every :class:`~sandbox.errors.SandboxError` raised by any command is reported
here, once: a red one-line reason, the hint, and the error's exit code.
Tracebacks are shown only with ``--debug``.  Command groups live in their own
modules and stay thin; the work is done by plain Python APIs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sandbox import __version__
from sandbox.cli import capacity_cmd, doctor_cmd, runtime_cmd, spec_cmd
from sandbox.cli import fixtures_cmd, record_cmd
from sandbox.cli import replay_cmd
from sandbox.cli import images_cmd
from sandbox.cli import demo_cmd, load_cmd
from sandbox.cli import metrics_cmd
from sandbox.cli import backup_cmd, workflow_cmd
from sandbox.cli import features_cmd
from sandbox.cli import scenario_cmd
from sandbox.cli.output import errors
from sandbox.errors import InvalidInput, SandboxError

INTERNAL_ERROR = 70
#: A shell's status for a command killed by SIGPIPE (128 + 13): what `cmd | head` reports for other tools.
SIGPIPE_EXIT = 141


class _State:
    debug = False


def _report(exc: BaseException) -> int:
    """Print ``exc`` for a person and return the exit code to use."""
    if _State.debug:
        errors.print_exception(show_locals=False)
    if isinstance(exc, SandboxError):
        errors.print(f"[bold red]error:[/] {exc}")
        if isinstance(exc, InvalidInput):
            for problem in exc.problems:
                errors.print(f"  {problem}", markup=False)
        if (log_lines := getattr(exc, "log_lines", None)) and "last log lines" not in exc.hint:
            errors.print("[dim]last log lines:[/]")
            for line in log_lines:
                errors.print(f"  | {line}", markup=False)
        if exc.hint:
            errors.print(f"[dim]next:[/] {exc.hint}")
        return exc.exit_code
    errors.print(f"[bold red]internal error:[/] {type(exc).__name__}: {exc}", markup=True)
    errors.print("[dim]next:[/] run again with --debug for the traceback, and report it")
    return INTERNAL_ERROR


class BoundaryGroup(TyperGroup):
    """The root command group; turns every error into one report and an exit code."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:  # noqa: BLE001 - this is the one boundary that reports everything
            if _is_cli_control(exc):
                raise
            if isinstance(exc, BrokenPipeError):
                # The reader went away (`... | head`): nothing to report, and nothing more can be written.
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                raise typer.Exit(SIGPIPE_EXIT) from exc
            raise typer.Exit(_report(exc)) from exc


def _is_cli_control(exc: BaseException) -> bool:
    """Exit, abort and usage errors of typer (and the click it builds on) keep their own handling."""
    return type(exc).__module__.split(".")[0] in {"typer", "click"}


app = typer.Typer(
    cls=BoundaryGroup,
    name="aether-sandbox",
    help="Local full-stack sandbox and simulator for the Aether trading platform.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        print(f"aether-sandbox {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    spec: Annotated[
        Path | None,
        typer.Option("--spec", help="Use an edited platform spec instead of the bundled one.", envvar="AETHER_SANDBOX_SPEC"),
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Local full-stack sandbox and simulator for the Aether trading platform."""
    _State.debug = debug
    if spec is not None:
        from sandbox.spec.loader import use_spec_file

        use_spec_file(spec)


app.add_typer(spec_cmd.app, name="spec")
app.add_typer(images_cmd.app, name="images")
app.add_typer(fixtures_cmd.app, name="fixtures")
app.add_typer(workflow_cmd.app, name="workflow")
app.add_typer(features_cmd.app, name="features")
app.add_typer(scenario_cmd.app, name="scenario")
app.command("backup")(backup_cmd.backup)
app.command("restore")(backup_cmd.restore)
app.command("record")(record_cmd.record)
app.command("replay")(replay_cmd.replay)
app.command("metrics")(metrics_cmd.metrics)
app.command("capacity")(capacity_cmd.capacity)
app.add_typer(load_cmd.app, name="load")
app.command("demo")(demo_cmd.demo)
app.command("doctor")(doctor_cmd.doctor)
for _command in (runtime_cmd.up, runtime_cmd.down, runtime_cmd.status, runtime_cmd.logs, runtime_cmd.restart,
                 runtime_cmd.stop, runtime_cmd.start):
    app.command(_command.__name__)(_command)


def main() -> None:
    """Console-script entry point."""
    sys.exit(app())
