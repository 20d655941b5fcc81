"""Loading a platform spec from YAML, with every problem as ``location: message``.

The bundled ``platform.yaml`` is the default; ``aether-sandbox spec validate
FILE`` checks a user-edited copy.  Problems name the file, the line and the
path inside the document (``components[auth-service].requests.cpu_m``), never a
traceback.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sandbox.errors import InvalidInput
from sandbox.spec.checks import Loc, Problem, check_platform
from sandbox.spec.models import PlatformSpec

BUNDLED = "platform.yaml"

# libyaml's loader when PyYAML was built with it: several times faster, and the
# spec is loaded by every command.
_FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def bundled_spec_path() -> Path:
    """Path of the spec shipped with the package."""
    return Path(str(resources.files("sandbox.spec").joinpath(BUNDLED)))


_override: Path | None = None


def use_spec_file(path: Path | None) -> None:
    """Make :func:`default_spec` read ``path`` (a user-edited spec) instead of the bundled one."""
    global _override
    _override = path
    default_spec.cache_clear()


@lru_cache(maxsize=1)
def default_spec() -> PlatformSpec:
    """The platform spec in use (bundled, or the one given with ``--spec``), parsed once per process."""
    return load_spec(_override or bundled_spec_path())


def load_spec(path: Path) -> PlatformSpec:
    """Parse and check the spec at ``path``.

    Raises :class:`InvalidInput` whose ``problems`` are ``file:line location: message`` lines.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read spec file {path}: {exc.strerror}", hint="check the path") from exc
    return parse_spec(text, source=str(path))


def parse_spec(text: str, *, source: str = "<spec>") -> PlatformSpec:
    """Parse and check a spec given as YAML text; ``source`` names it in problems."""
    try:
        data = yaml.load(text, Loader=_FastLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}" if mark else source
        reason = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(
            f"{source} is not valid YAML",
            problems=[f"{where}: {reason}"],
            hint="fix the YAML syntax at the line shown",
        ) from exc
    if not isinstance(data, dict):
        raise InvalidInput(f"{source} is not a platform spec", problems=[f"{source}:1: expected a mapping at the top level"])
    try:
        spec = PlatformSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            Problem(tuple(err["loc"]), _pydantic_message(err)) for err in exc.errors(include_url=False)
        ]
        raise _invalid(source, text, data, problems) from None
    if problems := check_platform(spec):
        raise _invalid(source, text, data, problems)
    return spec


def _pydantic_message(err: dict[str, Any]) -> str:
    message = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return message.removeprefix("Value error, ")


def _invalid(source: str, text: str, data: Any, problems: list[Problem]) -> InvalidInput:
    # Line numbers need the node tree; it is built only when there is something to report.
    root = yaml.compose(text, Loader=_FastLoader)
    lines = [f"{source}:{_line_of(root, p.loc)} {format_loc(data, p.loc)}: {p.message}" for p in problems]
    noun = "problem" if len(lines) == 1 else "problems"
    return InvalidInput(
        f"{source}: {len(lines)} {noun} in the platform spec",
        problems=lines,
        hint="fix each location listed, then run `aether-sandbox spec validate FILE` again",
    )


def format_loc(data: Any, loc: Loc) -> str:
    """A readable path: list items of named entries show their name, not their index."""
    out = ""
    node = data
    for part in loc:
        if isinstance(part, int):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            label = item.get("name") if isinstance(item, dict) and isinstance(item.get("name"), str) else part
            out += f"[{label}]"
            node = item
        else:
            out += f".{part}" if out else str(part)
            node = node.get(part) if isinstance(node, dict) else None
    return out or "(top level)"


def _line_of(root: yaml.Node | None, loc: Loc) -> int:
    """The 1-based line of the deepest YAML node ``loc`` reaches."""
    if root is None:
        return 1
    node = root
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            break
        node = child
    return node.start_mark.line + 1
