"""``aether-sandbox fixtures``: import, inspect, validate and generate replay sessions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from sandbox.cli.output import console, print_json
from sandbox.errors import InvalidInput

if TYPE_CHECKING:
    from sandbox.replay.fixture import Manifest

app = typer.Typer(help="Kraken replay sessions (fixtures/kraken_replays): import, inspect, validate, generate.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SUFFIXES = (".ndjson", ".ndjson.gz", ".jsonl", ".jsonl.gz")


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; directories as the session files they hold."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.name.endswith(SUFFIXES)))
        elif path.exists():
            out.append(path)
        else:
            raise InvalidInput(f"{path} does not exist", problems=[f"{path}:0: no such file or directory"])
    return out


def _summary(manifest: Manifest) -> dict[str, Any]:
    return {
        "api": manifest.api,
        "channels": manifest.channels,
        "symbols": manifest.symbols,
        "depths": sorted(set(manifest.depths.values())),
        "frames": manifest.frames,
        "duration_s": manifest.duration_s,
        "source": manifest.source,
    }


def _sessions_table(title: str, rows: list[tuple[Path, Manifest]]) -> Table:
    table = Table(title=title or None, title_justify="left")
    for column in ("file", "api", "symbols", "depth", "frames", "duration", "size"):
        table.add_column(column, justify="right" if column in ("frames", "duration", "size", "depth") else "left")
    for path, m in rows:
        symbols = ", ".join(m.symbols) if len(m.symbols) <= 2 else f"{len(m.symbols)} pairs"
        depth = "/".join(str(d) for d in sorted(set(m.depths.values()))) or "—"
        size = f"{path.stat().st_size / 1024:,.0f} KiB" if path.exists() else "—"
        table.add_row(path.name, m.api, symbols, depth, f"{m.frames:,}", f"{m.duration_s:,.1f} s", size)
    return table


@app.command("inspect")
def inspect(
    paths: Annotated[list[Path], typer.Argument(help="Session files or directories of them.")],
    as_json: JsonOption = False,
) -> None:
    """Show each session's manifest: API version, symbols, channels, depth, counts, duration, source."""
    from sandbox.replay.fixture import read_session

    rows = [(path, read_session(path).manifest) for path in _expand(paths)]
    if as_json:
        print_json([{"path": str(p), "manifest": m.model_dump(mode="json")} for p, m in rows])
        return
    console.print(_sessions_table(f"{len(rows)} replay session(s)", rows))
    if len(rows) == 1:
        path, m = rows[0]
        console.print(f"channels: {', '.join(m.channels)}   source: {m.source}")
        counts = Table(title="frames per channel and symbol", title_justify="left")
        counts.add_column("channel")
        counts.add_column("symbol")
        counts.add_column("frames", justify="right")
        for channel, total in m.channel_counts.items():
            counts.add_row(channel, "", f"{total:,}")
            for symbol, n in m.symbol_counts.get(channel, {}).items():
                counts.add_row("", symbol, f"{n:,}")
        console.print(counts)


@app.command("validate")
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Session files or directories of them.")],
    checksums: Annotated[bool, typer.Option("--checksums/--no-checksums", help="Rebuild books and verify checksums.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Check sessions line by line (JSON, Kraken frames, channels, times, books and checksums)."""
    from sandbox.replay.validate import validate_file

    reports = [validate_file(path, checksums=checksums) for path in _expand(paths)]
    if as_json:
        print_json([r.as_dict() for r in reports])
    else:
        table = Table(title="replay session validation", title_justify="left")
        for column in ("file", "result", "frames", "checksums verified", "problems"):
            table.add_column(column, justify="right" if column in ("frames", "checksums verified", "problems") else "left")
        for r in reports:
            result = "[green]ok[/]" if r.ok else "[red]invalid[/]"
            table.add_row(Path(r.path).name, result, f"{r.frames:,}", f"{r.checksums_ok:,}", str(len(r.problems) + r.suppressed))
        console.print(table)
    bad = [r for r in reports if not r.ok]
    if bad:
        problems = [p for r in bad for p in r.problems]
        hidden = sum(r.suppressed for r in bad)
        if hidden:
            problems.append(f"... and {hidden} more")
        raise InvalidInput(f"{len(bad)} of {len(reports)} session(s) invalid", problems=problems)


@app.command("import")
def import_(
    source: Annotated[Path, typer.Argument(help="A capture: NDJSON of frames, JSON array, pykrakensdk object, cryptofeed raw log.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Fixture to write (default fixtures/kraken_replays/<name>.ndjson.gz).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto, fixture, ndjson, json-array, pykrakensdk or cryptofeed.")] = "auto",
    interval: Annotated[float, typer.Option(help="Seconds between frames when no frame carries a timestamp.")] = 0.001,
    notes: Annotated[str, typer.Option(help="Free text kept in the manifest.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Convert a capture made elsewhere into a validated fixture (nothing is written when it is invalid)."""
    from sandbox.replay.generator import default_dir
    from sandbox.replay.importers import FORMATS, import_capture

    if fmt != "auto" and fmt not in FORMATS:
        raise InvalidInput(f"unknown --format {fmt!r}", hint=f"use one of: auto, {', '.join(FORMATS)}")
    if not source.is_file():
        raise InvalidInput(f"{source} does not exist", problems=[f"{source}:0: no such file"])
    stem = source.name.split(".")[0]
    dest = out or default_dir() / f"{stem}.ndjson.gz"
    manifest = import_capture(source, dest, fmt, interval=interval, notes=notes)
    if as_json:
        print_json({"path": str(dest), "manifest": manifest.model_dump(mode="json")})
        return
    console.print(f"[green]imported[/] {source} -> {dest}")
    console.print(_sessions_table("", [(dest, manifest)]))


@app.command("generate")
def generate(
    preset: Annotated[list[str] | None, typer.Option("--preset", help="A named session (repeatable); see --list.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Regenerate every session shipped in fixtures/kraken_replays.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the presets and exit.")] = False,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Directory (presets) or file (custom session).")] = None,
    api: Annotated[str, typer.Option(help="Custom session: v2 or v1.")] = "v2",
    symbol: Annotated[list[str] | None, typer.Option("--symbol", help="Custom session: a pair (repeatable).")] = None,
    channel: Annotated[list[str] | None, typer.Option("--channel", help="Custom session: book, trade, ticker, ohlc.")] = None,
    depth: Annotated[int, typer.Option(help="Custom session: book depth.")] = 10,
    duration: Annotated[float, typer.Option(help="Custom session: seconds.")] = 60.0,
    seed: Annotated[int, typer.Option(help="Custom session: random seed.")] = 1,
    rate: Annotated[float, typer.Option(help="Custom session: events per second per pair (normal regime).")] = 6.0,
    as_json: JsonOption = False,
) -> None:
    """Generate seeded synthetic sessions: presets (deterministic, byte for byte) or a custom one."""
    from sandbox.replay.generator import PRESETS, SHIPPED, GeneratorConfig, default_dir, generate_file

    if list_:
        rows = {name: {"shipped": name in SHIPPED, **_config_dict(cfg)} for name, cfg in PRESETS.items()}
        if as_json:
            print_json(rows)
        else:
            table = Table(title="generator presets", title_justify="left")
            for column in ("preset", "api", "symbols", "depth", "channels", "duration", "seed", "shipped"):
                table.add_column(column, no_wrap=column == "preset")
            for name, r in rows.items():
                table.add_row(name, r["api"], str(len(r["symbols"])), str(r["depth"]), ", ".join(r["channels"]),
                              f"{r['duration_s']:g} s", str(r["seed"]), "yes" if r["shipped"] else "on demand")
            console.print(table)
        return
    jobs: list[tuple[str, GeneratorConfig, Path]] = []
    names = list(SHIPPED) if all_ else list(preset or [])
    unknown = [n for n in names if n not in PRESETS]
    if unknown:
        raise InvalidInput(f"unknown preset(s): {', '.join(unknown)}", hint="aether-sandbox fixtures generate --list")
    if names:
        directory = out or default_dir()
        jobs = [(n, PRESETS[n], directory / f"{n}.ndjson.gz") for n in names]
    else:
        if out is None:
            raise InvalidInput("a custom session needs --out FILE", hint="or use --preset NAME / --all")
        default_symbols = ["BTC/USD"] if api == "v2" else ["XBT/USD"]
        config = GeneratorConfig(
            api=api, symbols=list(symbol or default_symbols), depth=depth,
            channels=list(channel or ["book", "trade", "ticker", "ohlc"]), duration_s=duration, seed=seed, rate=rate,
        )
        jobs = [("", config, out)]
    results = []
    for name, config, path in jobs:
        manifest = generate_file(config, path, name=name)
        results.append((path, manifest))
    if as_json:
        print_json([{"path": str(p), "manifest": m.model_dump(mode="json")} for p, m in results])
        return
    console.print(_sessions_table(f"generated {len(results)} session(s)", results))


def _config_dict(config: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(config)
