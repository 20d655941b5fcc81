"""Reading scenario files: discovery, YAML with line numbers, validation with ``file:line field: message``.

The YAML is composed into nodes first (PyYAML keeps each node's start mark), so
every problem pydantic finds is reported at the line of the deepest node its
location reaches::

    scenarios/bad.yaml:12 steps[1].place.qty: not a number: 'abc'
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sandbox.errors import InvalidInput
from sandbox.scenarios.models import Scenario, reference_problems

SUFFIXES = (".yaml", ".yml")


@dataclass
class ScenarioFile:
    """A valid scenario and where it came from."""

    path: Path
    scenario: Scenario

    @property
    def name(self) -> str:
        """The scenario's name."""
        return self.scenario.name

    @property
    def suite(self) -> str:
        """The directory it sits in (the JUnit test-suite / class name)."""
        return self.path.parent.name or "scenarios"


def discover(paths: Sequence[str | Path]) -> list[Path]:
    """Every ``*.yaml`` / ``*.yml`` under ``paths`` (files as given), sorted; ``InvalidInput`` for a missing path."""
    found: list[Path] = []
    missing = []
    for raw in paths or ("scenarios",):
        path = Path(raw)
        if path.is_file():
            found.append(path)
        elif path.is_dir():
            found.extend(p for p in sorted(path.rglob("*")) if p.suffix in SUFFIXES and p.is_file()
                         and not p.name.startswith("."))
        else:
            missing.append(str(path))
    if missing:
        raise InvalidInput(f"no such scenario file or directory: {', '.join(missing)}",
                           hint="give scenario files or directories (the shipped suites are in scenarios/)")
    return list(dict.fromkeys(found))


def format_loc(loc: Iterable[Any]) -> str:
    """``('steps', 2, 'place', 'place', 'qty')`` -> ``steps[2].place.qty`` (the union tag shown once)."""
    out = ""
    previous: Any = None
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part != previous:
            out += f".{part}" if out else str(part)
        previous = part
    return out or "(top level)"


def line_of(root: yaml.Node | None, loc: Iterable[Any]) -> int:
    """The 1-based line of the deepest node ``loc`` reaches in the composed YAML."""
    node = root
    if node is None:
        return 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if getattr(k, "value", None) == str(part)), None)
            if child is None:
                continue  # a union tag or a model name pydantic adds: stay on this node
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1


def parse(text: str, source: str = "<scenario>") -> Scenario:
    """A scenario from YAML text; ``InvalidInput`` with ``source:line field: message`` problems."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        raise InvalidInput(f"{source} is not valid YAML", problems=[f"{where}: {getattr(exc, 'problem', exc)}"],
                           hint="fix the YAML syntax at the line shown") from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: a scenario is a mapping (name, accounts, steps, expect...)",
                           problems=[f"{source}:1 (top level): expected a mapping"])
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        raise _invalid(source, _problems(source, root, exc.errors())) from exc
    refs = reference_problems(scenario)
    if refs:
        raise _invalid(source, [f"{source}:{line} {where}: {msg}" for line, where, msg in
                                sorted((line_of(root, loc), format_loc(loc), msg) for loc, msg in refs)])
    return scenario


#: location parts pydantic adds for the members of a union (``str``, ``literal['a','b']``, ``list[...]``)
_TYPE_PARTS = frozenset({"str", "int", "float", "bool", "dict", "list", "none", "tuple"})


def _clean(loc: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(p for p in loc if isinstance(p, int) or ("[" not in str(p) and str(p) not in _TYPE_PARTS))


def _problems(source: str, root: yaml.Node | None, errors: list[Any]) -> list[str]:
    """One line per location (a union's members' messages joined), sorted by line."""
    grouped: dict[tuple[Any, ...], list[str]] = {}
    for error in errors:
        messages = grouped.setdefault(_clean(error["loc"]), [])
        if (message := _message(error)) not in messages:
            messages.append(message)
    lines = sorted((line_of(root, loc), format_loc(loc), " or ".join(msgs)) for loc, msgs in grouped.items())
    return [f"{source}:{line} {where}: {message}" for line, where, message in lines]


def _message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", ""))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if error.get("type") == "union_tag_invalid":
        ctx = error.get("ctx") or {}
        message = f"unknown kind {ctx.get('tag')!r}; one of {ctx.get('expected_tags')}"
    if error.get("type") == "union_tag_not_found":
        message = "expected a one-key mapping such as `place: {...}`"
    return message


def _invalid(source: str, problems: list[str]) -> InvalidInput:
    noun = "problem" if len(problems) == 1 else "problems"
    return InvalidInput(f"{source}: {len(problems)} {noun} in the scenario", problems=problems,
                        hint="fix each location listed (the format: docs/scenarios.md), then "
                             "`aether-sandbox scenario validate FILE`")


def load(path: str | Path) -> ScenarioFile:
    """One scenario file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read {path}: {exc}") from exc
    return ScenarioFile(path, parse(text, str(path)))


def load_all(paths: Sequence[str | Path], keyword: str | None = None) -> list[ScenarioFile]:
    """Every scenario under ``paths`` (all problems of all files in one error), filtered by ``keyword``."""
    files, problems = [], []
    for path in discover(paths):
        try:
            files.append(load(path))
        except InvalidInput as exc:
            problems.extend(exc.problems or [str(exc)])
    if problems:
        raise InvalidInput(f"{len(problems)} problem(s) in the scenario files", problems=problems,
                           hint="fix each location listed, then `aether-sandbox scenario validate PATH`")
    names: dict[str, Path] = {}
    for item in files:
        if item.name in names:
            raise InvalidInput(f"two scenarios are named {item.name!r}: {names[item.name]} and {item.path}",
                               hint="scenario names must be unique in a run")
        names[item.name] = item.path
    return [f for f in files if matches(keyword, f)]


def matches(expression: str | None, item: ScenarioFile) -> bool:
    """``-k``: words joined by ``and`` / ``or`` / ``not``, each a substring (or glob) of name, tags or path."""
    if not expression:
        return True
    haystack = " ".join([item.name, *item.scenario.tags, str(item.path)]).lower()

    def word(token: str) -> bool:
        token = token.lower()
        return fnmatch.fnmatch(haystack, f"*{token}*") if any(c in token for c in "*?[") else token in haystack

    tokens = expression.replace("(", " ( ").replace(")", " ) ").split()
    code = []
    for token in tokens:
        if token.lower() in ("and", "or", "not", "(", ")"):
            code.append(token.lower())
        else:
            code.append(str(word(token)))
    try:
        return bool(eval(" ".join(code), {"__builtins__": {}}, {}))  # noqa: S307 - only True/False/and/or/not/()
    except SyntaxError as exc:
        raise InvalidInput(f"-k: cannot read {expression!r}", hint="e.g. -k 'fill and not replay'") from exc
