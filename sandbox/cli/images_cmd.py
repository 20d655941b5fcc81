"""``aether-sandbox images``: build the container images, and list which image each component runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from sandbox.cli.output import console, errors, print_json

app = typer.Typer(help="Container images of the docker runtime: build them (also offline), list them.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.command("build")
def build(
    components: Annotated[list[str] | None, typer.Argument(help="Build only the images these components run.")] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Build the offline set from Debian packages and PyPI wheels (no registry needed).")] = False,
    base_image: Annotated[str | None, typer.Option("--base-image", envvar="AETHER_SANDBOX_BASE_IMAGE",
                                                   help="Base of the project image (official set; default python:3.11-slim-bookworm).")] = None,
    network: Annotated[str | None, typer.Option("--network", help="docker build --network (e.g. host, where the bridge cannot resolve names).")] = None,
    extras: Annotated[str, typer.Option("--extras", help="Project extras to install in the project image, comma-separated.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Build the project image (and with --offline the whole offline set); cached, so a rebuild is fast."""
    import time

    from sandbox.runtimes.docker.build import build_images
    from sandbox.spec.loader import default_spec

    started = time.monotonic()

    def progress(line: str) -> None:
        if not as_json:
            errors.print(f"[dim]{time.monotonic() - started:6.1f}s[/] {escape(line)}")

    report = build_images(default_spec(), offline=offline, components=components or (), progress=progress,
                          base_image=base_image, network=network, extras=extras)
    if as_json:
        print_json(report.to_dict())
        return
    table = Table(title=f"{'offline' if offline else 'official'} image set: {report.seconds:.1f} s", title_justify="left")
    for column in ("image", "status", "seconds", "size", "runs"):
        table.add_column(column, no_wrap=True)
    for image in report.images:
        runs = image.components[0] if len(image.components) == 1 else f"{len(image.components)} components"
        colour = "green" if image.status == "built" else "dim"
        table.add_row(image.name, f"[{colour}]{image.status}[/]", f"{image.seconds:.1f}",
                      f"{image.size_bytes / 2**20:.0f} MiB", runs if image.components else "base")
    console.print(table)
    differences = [i for i in report.images if i.differences and i.components]
    if differences:
        console.print("[bold]differences from the official images:[/]")
        for image in differences:
            console.print(f"  {escape(', '.join(image.components))}: {escape(image.differences)}")
    for name, why in report.unavailable.items():
        console.print(f"[yellow]unavailable offline:[/] {name}: {escape(why)}")
    for note in report.notes:
        console.print(f"[dim]note:[/] {escape(note)}")


@app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Each component's image in the official and offline sets: present or missing, overridden or not."""
    from sandbox.runtimes.docker.images import image_table
    from sandbox.spec.loader import default_spec

    rows = image_table(default_spec())
    if as_json:
        print_json(rows)
        return
    table = Table(title="container images (overrides: AETHER_SANDBOX_IMAGE_<NAME>, images.yaml)", title_justify="left")
    table.add_column("component", no_wrap=True)
    table.add_column("official set", overflow="fold")
    table.add_column("offline set", overflow="fold")
    by_component: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_component.setdefault(row["component"], {})[row["set"]] = row
    for component, sets in by_component.items():
        table.add_row(component, _cell(sets["official"]), _cell(sets["offline"]))
    console.print(table)
    if rows and rows[0]["present"] is None:
        console.print("[yellow]note:[/] no Docker engine answers: presence unknown")


def _cell(row: dict) -> str:
    """``image`` plus whether the engine holds it and where the choice came from."""
    if row["image"] is None:
        return "[yellow]unavailable[/]"
    mark = {True: "[green]present[/]", False: "[red]missing[/]", None: "[dim]unknown[/]"}[row["present"]]
    source = f" [magenta]({row['source']})[/]" if row["overridden"] else ""
    return f"{escape(row['image'])} {mark}{source}"
