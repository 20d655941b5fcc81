"""``up``, ``down``, ``status``, ``logs``, ``restart``, ``stop``, ``start``: the platform's lifecycle."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, fmt_cpu, fmt_mem, print_json
from sandbox.runtimes.factory import RuntimeChoice

RuntimeOption = Annotated[
    RuntimeChoice, typer.Option("--runtime", "-r", help="auto: docker when an engine answers and its images are present, else local.")
]
SandboxOption = Annotated[str, typer.Option("--name", "-n", help="Sandbox name; each has its own state and ports.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _runtime(choice: RuntimeChoice, name: str, quiet: bool = False):
    from sandbox.runtimes.factory import choose
    from sandbox.spec.loader import default_spec

    runtime, why = choose(default_spec(), choice, name)
    if not quiet:
        errors.print(f"[dim]runtime:[/] {escape(why)}")
    return runtime


def _fmt_usage(value: float | None, limit: int | None, fmt) -> str:
    if value is None:
        return "—"
    shown = fmt(round(value)) if value >= 1 or value == 0 else f"{value:.1f}"
    return f"{shown} / {fmt(limit)}" if limit else shown


def _status_table(status) -> Table:
    table = Table(title=f"sandbox '{status.name}' ({status.runtime}): " + ("up" if status.up else "down"), title_justify="left")
    for column in ("component", "state", "port", "pid", "CPU / limit", "memory / limit", "restarts"):
        table.add_column(column, no_wrap=True)
    for c in status.components:
        colour = {"running": "green", "failed": "red", "crashed": "red", "unavailable": "yellow"}.get(c.state, "white")
        state = c.state if c.state != "running" or c.health == "healthy" else f"running, {c.health}"
        table.add_row(
            c.name, f"[{colour}]{state}[/]", str(c.port or "—"), str(c.pid or "—"),
            _fmt_usage(c.usage.cpu_m, c.usage.cpu_limit_m, fmt_cpu),
            _fmt_usage(c.usage.memory_mib, c.usage.memory_limit_mib, fmt_mem) + ("" if c.usage.enforced else " [dim](measured)[/]"),
            str(c.restarts),
        )
    return table


def _print_status(status) -> None:
    console.print(_status_table(status))
    for c in status.components:
        if c.detail:
            console.print(f"[dim]{c.name}:[/] {escape(c.detail)}")
    for note in status.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


def up(
    components: Annotated[list[str] | None, typer.Argument(help="Bring up only these (and their dependencies).")] = None,
    profile: Annotated[str | None, typer.Option(help="A named subset: minimal, full, observability.")] = None,
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    name: SandboxOption = "default",
    keep_on_failure: Annotated[bool, typer.Option(help="Leave what started running when a component fails.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for every component to be healthy.")] = 120.0,
    as_json: JsonOption = False,
) -> None:
    """Bring the platform up and wait until every component is healthy."""
    import time

    rt = _runtime(runtime, name)
    started = time.monotonic()

    def progress(component: str, event: str) -> None:
        if not as_json:
            errors.print(f"[dim]{time.monotonic() - started:6.2f}s[/] {component}: {escape(event)}")

    status = rt.up(components or [], profile=profile, keep_on_failure=keep_on_failure, timeout=timeout, progress=progress)
    elapsed = time.monotonic() - started
    if as_json:
        print_json({**status.to_dict(), "seconds_to_healthy": round(elapsed, 2)})
        return
    _print_status(status)
    console.print(f"[green]up[/] in {elapsed:.1f} s. Port map: " + ", ".join(
        f"{c.name}={c.port}" for c in status.components if c.port))
    _show_admin_password_once(rt, status)


def _show_admin_password_once(rt, status) -> None:
    """Print the generated bootstrap admin password the first time auth-service is up."""
    state = getattr(rt, "state", None)
    auth_up = any(c.name == "auth-service" and c.state == "running" for c in status.components)
    if state is None or not auth_up:
        return
    marker = state.root / ".admin-password-shown"
    if marker.exists():
        return
    creds, _ = state.credentials()
    console.print(
        f"[bold]Bootstrap admin:[/] user [bold]admin[/], password [bold]{escape(creds['bootstrap_admin_password'])}[/] "
        f"(shown once; kept in {state.credentials_json}, readable by you only)"
    )
    marker.touch()


def down(
    volumes: Annotated[bool, typer.Option("--volumes", help="Also delete the sandbox's data.")] = False,
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    name: SandboxOption = "default",
) -> None:
    """Stop every component in reverse order; data is kept unless --volumes."""
    rt = _runtime(runtime, name, quiet=True)
    rt.down(volumes=volumes)
    console.print(f"sandbox '{name}' is down" + (" and its data deleted" if volumes else "; data kept"))


def status(runtime: RuntimeOption = RuntimeChoice.AUTO, name: SandboxOption = "default", as_json: JsonOption = False) -> None:
    """State, health, port, PID, CPU and memory against budget, restarts, enforcement."""
    from sandbox.observability.urls import observability_urls
    from sandbox.spec.loader import default_spec

    rt = _runtime(runtime, name, quiet=True)
    st = rt.status()
    urls = observability_urls(st, default_spec())
    if as_json:
        print_json({**st.to_dict(), "observability": urls})
        return
    _print_status(st)
    for component, info in urls.items():
        where = info["url"] or f"{info['state']}" + (f" ({info['detail']})" if info["detail"] else "")
        console.print(f"[dim]observability:[/] {component}: {escape(where)}")
    if not urls and st.components:
        console.print("[dim]observability: not in this sandbox (`aether-sandbox up --profile observability` adds it)[/]")


def logs(
    component: Annotated[str, typer.Argument(help="Component name.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines.")] = False,
    tail: Annotated[int, typer.Option("--tail", help="Lines to show first.")] = 100,
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    name: SandboxOption = "default",
) -> None:
    """Show a component's log."""
    rt = _runtime(runtime, name, quiet=True)
    for line in rt.logs(component, tail=tail, follow=follow):
        print(line)


def restart(
    component: Annotated[str, typer.Argument(help="Component name.")],
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    name: SandboxOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Restart one component and wait until it is healthy."""
    from dataclasses import asdict

    rt = _runtime(runtime, name, quiet=True)
    c = rt.restart(component)
    if as_json:
        print_json(asdict(c))
    else:
        console.print(f"{c.name}: {c.state}, {c.health}, pid {c.pid}")


def stop(
    component: Annotated[str, typer.Argument(help="Component name.")],
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    name: SandboxOption = "default",
    as_json: JsonOption = False,
) -> None:
    """Stop one component and keep it stopped (no restarts) until `start`."""
    from dataclasses import asdict

    c = _runtime(runtime, name, quiet=True).stop(component)
    if as_json:
        print_json(asdict(c))
    else:
        console.print(f"{c.name}: {c.state}" + (f" ({escape(c.detail)})" if c.detail else ""))


def start(
    component: Annotated[str, typer.Argument(help="Component name.")],
    runtime: RuntimeOption = RuntimeChoice.AUTO,
    name: SandboxOption = "default",
    timeout: Annotated[float, typer.Option(help="Seconds to wait until it is healthy.")] = 120.0,
    as_json: JsonOption = False,
) -> None:
    """Start a component held by `stop` and wait until it is healthy."""
    from dataclasses import asdict

    c = _runtime(runtime, name, quiet=True).start(component, timeout=timeout)
    if as_json:
        print_json(asdict(c))
    else:
        console.print(f"{c.name}: {c.state}, {c.health}, pid {c.pid}")
