"""``aether-sandbox replay SESSION``: a recorded session through the running platform, verified.

Thin: the work is :mod:`sandbox.replay.run` (replay) and :mod:`sandbox.replay.verify`
(counting and latency), imported when the command runs so ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, print_json
from sandbox.runtimes.factory import RuntimeChoice


def _split(values: list[str] | None) -> tuple[str, ...]:
    return tuple(s.strip() for v in values or () for s in v.split(",") if s.strip())


def replay(
    session: Annotated[str, typer.Argument(help="A shipped session name (fixtures/kraken_replays) or a fixture file.")],
    speed: Annotated[float, typer.Option("--speed", help="Times real time.", min=0.0)] = 1.0,
    as_fast: Annotated[bool, typer.Option("--max", help="As fast as the platform takes it (overrides --speed).")] = False,
    loop: Annotated[bool, typer.Option("--loop", help="After the verified pass, leave the venue looping the session.")] = False,
    symbols: Annotated[
        list[str] | None, typer.Option("--symbols", help="Only these symbols (repeat, or comma separated).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds allowed beyond the session's paced duration.")] = 120.0,
    name: Annotated[str, typer.Option("--name", "-n", help="Sandbox name.")] = "default",
    runtime: Annotated[RuntimeChoice, typer.Option("--runtime", "-r", help="Runtime the sandbox runs on.")] = RuntimeChoice.AUTO,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Replay a recorded Kraken session through the running platform and verify it end to end.

    The venue replays SESSION; kraken-ws-ingest verifies every book checksum and
    publishes to Kafka; the records are counted back by consuming.  Exit code 1
    when anything was lost, reordered or failed verification; 2 for a bad
    session file (each problem as file:line).
    """
    from sandbox.replay.run import ReplayRequest, locate, prepare
    from sandbox.replay.run import replay as run_replay
    from sandbox.replay.run import verdict

    request = ReplayRequest(session, speed=None if as_fast else speed, loop=loop, symbols=_split(symbols), timeout_s=timeout)
    prepared = prepare(request)  # bad input is reported before anything is touched
    endpoints = locate(name, runtime.value)

    def progress(line: str) -> None:
        if not as_json:
            errors.print(f"[dim]{escape(line)}[/]")

    report = run_replay(endpoints, request, progress=progress, prepared=prepared)
    if as_json:
        print_json(report.as_dict())
    else:
        _print(report)
    verdict(report)


def _ms(value: Any) -> str:
    return "—" if value is None else f"{value:,.2f} ms"


def _print(report: Any) -> None:
    pace = "max" if report.speed is None else f"{report.speed:g}x"
    summary = Table(title=f"replay {report.session} ({report.api}, {pace}, run {report.run})", title_justify="left", show_header=False)
    summary.add_column("what", style="dim")
    summary.add_column("value")
    rate = f"{report.achieved_rate:,.0f} frames/s" if report.achieved_rate else "—"
    if report.requested_rate:
        rate += f" of {report.requested_rate:,.0f} requested ({report.achieved_rate / report.requested_rate:.0%})" if report.achieved_rate else ""
    lat = report.latency
    rows = [
        ("frames played by the venue", f"{report.frames_played:,}"),
        ("frames sent to / received by the ingest", f"{report.frames_sent:,} / {report.frames_received:,}"),
        ("records expected / consumed from Kafka", f"{report.records_expected:,} / {report.records_consumed:,}"),
        ("checksums verified / failed", f"{report.checksums_verified:,} of {report.checksums_expected or 0:,} / {report.checksums_failed}"),
        ("crossed books, trade-id gaps, out of order", f"{report.crossed} / {report.gaps} ({report.missing} missing) / {report.out_of_order}"),
        ("resubscribes (completed), dropped updates", f"{report.resubscribes} ({report.resyncs_completed}), {report.dropped}"),
        ("reconnects, invalid frames, publish errors", f"{report.reconnects}, {report.invalid_frames}, {report.publish_errors}"),
        ("replay rate", rate),
        ("end-to-end rate (first send to last ack)", f"{report.end_to_end_rate:,.0f} records/s" if report.end_to_end_rate else "—"),
        ("latency venue send -> Kafka ack p50/p90/p99/max",
         " / ".join(_ms(lat.get(k)) for k in ("p50", "p90", "p99", "max")) + f"  ({lat.get('joined', 0):,} records)"),
        ("  of which in the ingest (receive -> ack) p50/p99",
         " / ".join(_ms(report.ingest_latency.get(k)) for k in ("p50", "p99"))),
    ]
    for what, value in rows:
        summary.add_row(what, value)
    console.print(summary)
    topics = Table(title="records per Kafka topic (counted by consuming)", title_justify="left")
    for column in ("topic", "expected", "consumed", "acked", "sequence", ""):
        topics.add_column(column, justify="right" if column in ("expected", "consumed", "acked") else "left")
    for t in report.topics.values():
        seq = "ok" if not t.seq_gaps and not t.seq_back else f"{t.seq_gaps} missing, {t.seq_back} back"
        mark = "[green]✓[/]" if t.complete else "[red]✗[/]"
        topics.add_row(t.topic, f"{t.expected:,}" if t.expected is not None else "—", f"{t.consumed:,}", f"{t.acked:,}", seq, mark)
    console.print(topics)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    if report.ok:
        console.print("[green]verified:[/] nothing lost, reordered or failed verification")
