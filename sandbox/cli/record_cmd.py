"""``aether-sandbox record``: capture a Kraken WebSocket session into the fixture format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sandbox.cli.output import console, print_json


def record(
    url: Annotated[str, typer.Option(help="Endpoint: wss://ws.kraken.com/v2 (live v2), wss://ws.kraken.com (live v1), "
                                          "or the venue simulator, e.g. ws://127.0.0.1:8081/v2.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Fixture to write (.ndjson.gz).")],
    symbol: Annotated[list[str], typer.Option("--symbol", help="Pair to subscribe (repeatable): BTC/USD for v2, XBT/USD for v1.")],
    channel: Annotated[list[str] | None, typer.Option("--channel", help="book, trade, ticker, ohlc (repeatable; default book and trade).")] = None,
    depth: Annotated[int, typer.Option(help="Book depth: 10, 25, 100, 500 or 1000.")] = 10,
    interval: Annotated[int, typer.Option(help="Candle interval in minutes (ohlc).")] = 1,
    duration: Annotated[float | None, typer.Option(help="Seconds to record.")] = 60.0,
    frames: Annotated[int | None, typer.Option("--frames", help="Stop after this many received frames.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Record every frame sent and received, with local times, raw text unchanged; then validate it."""
    import asyncio

    from sandbox.replay.record import DEFAULT_CHANNELS, RecordPlan, record_session
    from sandbox.replay.validate import validate_file

    plan = RecordPlan(url=url, symbols=list(symbol), channels=list(channel or DEFAULT_CHANNELS), depth=depth,
                      interval=interval, duration_s=duration, max_frames=frames)
    if not as_json:
        console.print(f"recording {', '.join(plan.channels)} for {', '.join(plan.symbols)} from {url} ...")
    manifest = asyncio.run(record_session(plan, out))
    report = validate_file(out)
    if as_json:
        print_json({"path": str(out), "manifest": manifest.model_dump(mode="json"), "validation": report.as_dict()})
        return
    console.print(f"[green]recorded[/] {manifest.frames:,} frames over {manifest.duration_s:,.1f} s into {out}")
    if report.ok:
        console.print(f"valid: {report.checksums_ok:,} book checksums verified")
    else:
        console.print(f"[yellow]kept as recorded, but it has {len(report.problems)} problem(s):[/]")
        for line in report.problems[:20]:
            console.print(f"  {line}", markup=False)
