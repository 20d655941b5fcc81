"""Which container image each component runs: one resolver for every caller.

Each component with ``images`` in the platform spec has up to two images: the
*official* set (``images.default``: upstream infrastructure images and the
project image built from ``docker/Dockerfile``) and the *offline* set
(``images.offline``: built on this machine by ``aether-sandbox images build
--offline``).  A team can run its own image for any component instead:

* the environment variable ``AETHER_SANDBOX_IMAGE_<NAME>`` (the component name
  upper-cased, ``-`` as ``_``; e.g. ``AETHER_SANDBOX_IMAGE_AUTH_SERVICE``)
  replaces the image of both sets;
* an overrides file, ``$AETHER_SANDBOX_IMAGES`` or ``images.yaml`` in the
  sandbox config directory, maps component names to an image (both sets) or
  to ``{official: ..., offline: ...}`` (either key optional)::

      images:
        auth-service: registry.example.com/aether/auth:2.3
        timescaledb:
          offline: registry.example.com/aether/postgres-offline:15

The environment wins over the file.  Mistakes (an unknown component, a
malformed image reference, an unreadable file) are :class:`InvalidInput`
errors naming the file and key or the variable, never silently ignored.

:func:`resolve_images` is the one function the compose generator, ``images
list`` and ``doctor`` call.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sandbox.errors import InvalidInput
from sandbox.spec.models import PlatformSpec

#: Prefix of the per-component override variables.
ENV_PREFIX = "AETHER_SANDBOX_IMAGE_"
#: Names an overrides file, instead of ``images.yaml`` in the config directory.
FILE_ENV = "AETHER_SANDBOX_IMAGES"
#: Overrides the sandbox config directory.
CONFIG_ENV = "AETHER_SANDBOX_CONFIG_DIR"
OVERRIDES_FILE = "images.yaml"

ImageSet = Literal["official", "offline"]
SETS: tuple[ImageSet, ...] = ("official", "offline")

# A Docker image reference: [registry[:port]/]path[:tag][@sha256:digest].
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"^(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$"
)


@dataclass(frozen=True)
class ImageChoice:
    """The image one component runs, and where that choice came from."""

    component: str
    image: str
    source: str
    """``official``, ``offline``, ``override:env`` or ``override:file``."""

    @property
    def overridden(self) -> bool:
        """True when a user override chose the image."""
        return self.source.startswith("override:")


@dataclass(frozen=True)
class Override:
    """One user override of a component's image in one set."""

    component: str
    image_set: ImageSet
    image: str
    source: Literal["override:env", "override:file"]
    origin: str
    """Where it was given: the variable name, or ``FILE: images.KEY``."""


def env_var(component: str) -> str:
    """The override variable of ``component`` (``auth-service`` -> ``AETHER_SANDBOX_IMAGE_AUTH_SERVICE``)."""
    return ENV_PREFIX + component.upper().replace("-", "_")


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The sandbox config directory: ``$AETHER_SANDBOX_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/aether-sandbox``."""
    env = os.environ if env is None else env
    if explicit := env.get(CONFIG_ENV):
        return Path(explicit)
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "aether-sandbox"


def overrides_file(env: Mapping[str, str] | None = None) -> Path | None:
    """The overrides file in effect, or ``None`` when there is none.

    ``$AETHER_SANDBOX_IMAGES`` must name an existing file (a typo there is an
    error); ``images.yaml`` in the config directory is optional.
    """
    env = os.environ if env is None else env
    if named := env.get(FILE_ENV):
        path = Path(named).expanduser()
        if not path.is_file():
            raise InvalidInput(f"{FILE_ENV} names {path}, which is not a file",
                               hint=f"create it or unset {FILE_ENV}")
        return path
    default = config_dir(env) / OVERRIDES_FILE
    return default if default.is_file() else None


def _check_reference(image: object, where: str) -> str:
    if not isinstance(image, str) or not _REFERENCE.match(image.strip()):
        raise InvalidInput(f"{where}: {image!r} is not an image reference",
                           hint="write it as [registry/]name[:tag], e.g. registry.example.com/aether/auth:2.3")
    return image.strip()


def _imaged(spec: PlatformSpec) -> list[str]:
    return [c.name for c in spec.components if c.images is not None]


def _from_file(spec: PlatformSpec, path: Path) -> list[Override]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read the image overrides file {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return []
    if not isinstance(data, dict) or set(data) - {"images"}:
        extra = sorted(set(data) - {"images"}) if isinstance(data, dict) else []
        raise InvalidInput(f"{path}: expected one top-level key `images`" + (f", found {', '.join(map(str, extra))}" if extra else ""),
                           hint="write `images:` followed by `component: image` lines")
    entries = data.get("images") or {}
    if not isinstance(entries, dict):
        raise InvalidInput(f"{path}: images: expected a mapping of component names to images")
    known = _imaged(spec)
    problems: list[str] = []
    overrides: list[Override] = []
    for key, value in entries.items():
        where = f"{path}: images.{key}"
        if key not in known:
            problems.append(f"{where}: unknown component {key!r}")
            continue
        if isinstance(value, dict):
            unknown_sets = sorted(set(map(str, value)) - set(SETS))
            if unknown_sets:
                problems.append(f"{where}: unknown image set(s) {', '.join(unknown_sets)} (use official or offline)")
                continue
            per_set = value
        else:
            per_set = {s: value for s in SETS}
        for image_set, image in per_set.items():
            overrides.append(Override(key, image_set, _check_reference(image, f"{where}" + (f".{image_set}" if isinstance(value, dict) else "")),
                                      "override:file", where))
    if problems:
        raise InvalidInput(f"{path}: {len(problems)} problem(s) in the image overrides", problems=problems,
                           hint="components with images: " + ", ".join(known))
    return overrides


def _from_env(spec: PlatformSpec, env: Mapping[str, str]) -> list[Override]:
    by_var = {env_var(name): name for name in _imaged(spec)}
    unknown = sorted(var for var in env if var.startswith(ENV_PREFIX) and var not in by_var)
    if unknown:
        raise InvalidInput(f"{', '.join(unknown)}: no component with images has this name",
                           hint="use AETHER_SANDBOX_IMAGE_<COMPONENT>, e.g. " + env_var(_imaged(spec)[0]))
    overrides = []
    for var, name in by_var.items():
        if (value := env.get(var)) is not None and value.strip():
            image = _check_reference(value, var)
            overrides.extend(Override(name, s, image, "override:env", var) for s in SETS)
    return overrides


def load_overrides(spec: PlatformSpec, env: Mapping[str, str] | None = None) -> dict[tuple[str, ImageSet], Override]:
    """Every override in effect, keyed by (component, image set); the environment wins over the file."""
    env = os.environ if env is None else env
    result: dict[tuple[str, ImageSet], Override] = {}
    if (path := overrides_file(env)) is not None:
        result.update(((o.component, o.image_set), o) for o in _from_file(spec, path))
    result.update(((o.component, o.image_set), o) for o in _from_env(spec, env))
    return result


def resolve_images(spec: PlatformSpec, *, offline: bool, env: Mapping[str, str] | None = None) -> dict[str, ImageChoice]:
    """The image each component runs, by component name, for the official or the offline set.

    Only components with ``images`` in the spec appear.  In the offline set a
    component without an offline image (Grafana, Loki, Tempo) appears only
    when the user overrides it; otherwise it cannot run offline and is left
    out (:func:`unavailable_offline` lists them with the reason).
    """
    overrides = load_overrides(spec, env)
    image_set: ImageSet = "offline" if offline else "official"
    choices: dict[str, ImageChoice] = {}
    for component in spec.components:
        if component.images is None:
            continue
        if (override := overrides.get((component.name, image_set))) is not None:
            choices[component.name] = ImageChoice(component.name, override.image, override.source)
        elif not offline:
            choices[component.name] = ImageChoice(component.name, component.images.default, "official")
        elif component.images.offline:
            choices[component.name] = ImageChoice(component.name, component.images.offline, "offline")
    return choices


def unavailable_offline(spec: PlatformSpec, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Components that have images but none in the offline set, with why (from the spec's notes)."""
    chosen = resolve_images(spec, offline=True, env=env)
    return {
        c.name: c.notes or "no offline image"
        for c in spec.components
        if c.images is not None and c.name not in chosen
    }


def offline_images(spec: PlatformSpec) -> dict[str, list[str]]:
    """Each offline image of the spec, with the components that run it (overrides not applied)."""
    images: dict[str, list[str]] = {}
    for component in spec.components:
        if component.images is not None and component.images.offline:
            images.setdefault(component.images.offline, []).append(component.name)
    return images


def missing(choices: Mapping[str, ImageChoice], tags: set[str]) -> list[str]:
    """The distinct images of ``choices`` the engine does not hold (``tags`` as from ``engine.image_tags``)."""
    return sorted({c.image for c in choices.values() if _normalise(c.image) not in tags})


def _normalise(image: str) -> str:
    """The tag the engine lists for ``image`` (``redis`` -> ``redis:latest``)."""
    if "@" in image:
        return image
    last = image.rsplit("/", 1)[-1]
    return image if ":" in last else f"{image}:latest"


def offline_available(spec: PlatformSpec) -> bool:
    """True when the engine holds every image of the offline set (overrides applied).

    That is the offline image of every component that has one, or the user's
    image where an override replaces it.  False when no engine answers.
    """
    from sandbox.runtimes import engine

    try:
        tags = engine.image_tags(timeout=5.0)
    except engine.EngineUnreachable:
        return False
    return not missing(resolve_images(spec, offline=True), tags)


def image_table(spec: PlatformSpec, env: Mapping[str, str] | None = None) -> list[dict]:
    """For ``images list``: each component's image per set, its source, and whether the engine holds it.

    ``present`` is ``None`` when no engine answers; ``image`` is ``None`` for a
    component with no image in that set.
    """
    from sandbox.runtimes import engine

    try:
        tags: set[str] | None = engine.image_tags(timeout=5.0)
    except engine.EngineUnreachable:
        tags = None
    per_set = {s: resolve_images(spec, offline=s == "offline", env=env) for s in SETS}
    rows = []
    for component in spec.components:
        if component.images is None:
            continue
        for image_set in SETS:
            choice = per_set[image_set].get(component.name)
            rows.append({
                "component": component.name,
                "set": image_set,
                "image": choice.image if choice else None,
                "source": choice.source if choice else "unavailable",
                "overridden": bool(choice and choice.overridden),
                "present": None if tags is None or choice is None else _normalise(choice.image) in tags,
            })
    return rows
