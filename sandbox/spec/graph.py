"""The dependency graph of the platform: closures, start order, cycles."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A dependency cycle as a path ``[a, b, ..., a]``, or ``None`` when acyclic.

    Edges to names missing from ``edges`` are ignored (they are reported as
    unknown dependencies elsewhere).
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(edges, white)
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        colour[node] = grey
        stack.append(node)
        for dep in edges[node]:
            if dep not in colour:
                continue
            if colour[dep] == grey:
                return stack[stack.index(dep) :] + [dep]
            if colour[dep] == white and (cycle := visit(dep)):
                return cycle
        stack.pop()
        colour[node] = black
        return None

    for node in edges:
        if colour[node] == white and (cycle := visit(node)):
            return cycle
    return None


def closure(edges: Mapping[str, Sequence[str]], roots: Iterable[str]) -> set[str]:
    """``roots`` and everything they depend on, transitively."""
    seen: set[str] = set()
    pending = list(roots)
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending.extend(edges.get(node, ()))
    return seen


def start_order(edges: Mapping[str, Sequence[str]], names: Iterable[str]) -> list[str]:
    """``names`` ordered so that every component comes after its dependencies.

    Ties keep the order of ``edges`` (the spec file's order), so the result is
    stable from run to run.
    """
    wanted = set(names)
    ordered: list[str] = []
    placed: set[str] = set()

    def place(node: str) -> None:
        if node in placed:
            return
        placed.add(node)
        for dep in edges.get(node, ()):
            if dep in wanted:
                place(dep)
        ordered.append(node)

    for node in edges:
        if node in wanted:
            place(node)
    return ordered
