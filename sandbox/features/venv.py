"""Feast in a virtualenv of its own, installed from PyPI on first use.

Feast pins versions the platform's own code must not be held to (it would
downgrade redis-py and prometheus-client in the project venv) and weighs about
600 MiB (pandas, pyarrow, dask, mypy).  So, like the other embedded servers,
it is infrastructure: a pinned ``feast[redis,postgres]`` in a venv under the
sandbox cache directory, created once per machine and shared by every sandbox.
Creation takes a file lock, so concurrent starts install it once.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sandbox.errors import SandboxError

#: The pinned Feast release (its extras: the Redis online store, psycopg for the export).
FEAST_VERSION = "0.67.0"
FEAST_REQUIREMENT = f"feast[redis,postgres]=={FEAST_VERSION}"


class FeastInstallError(SandboxError):
    """The Feast virtualenv could not be created."""


def cache_root() -> Path:
    """Machine-wide cache of the sandbox (``AETHER_SANDBOX_CACHE``, else ``$XDG_CACHE_HOME/aether-sandbox``)."""
    if explicit := os.environ.get("AETHER_SANDBOX_CACHE"):
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "aether-sandbox"


def venv_dir() -> Path:
    """Where the pinned Feast lives (``AETHER_FEAST_VENV`` overrides)."""
    if explicit := os.environ.get("AETHER_FEAST_VENV"):
        return Path(explicit)
    return cache_root() / f"feast-{FEAST_VERSION}"


def _marker(venv: Path) -> Path:
    return venv / ".aether-installed"


def installed(venv: Path | None = None) -> bool:
    """Whether the venv is complete (the marker is written last)."""
    venv = venv or venv_dir()
    return _marker(venv).is_file() and (venv / "bin" / "feast").is_file()


def ensure_feast(progress: Callable[[str], None] = lambda line: None, venv: Path | None = None) -> Path:
    """The Feast venv, created and installed first if needed; returns its directory.

    ``progress`` gets one line per step (the install takes ~30 s with a warm pip
    cache, minutes without).  Raises :class:`FeastInstallError` with pip's last
    lines when the install fails; a half-made venv is removed.
    """
    venv = venv or venv_dir()
    if installed(venv):
        return venv
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.parent / f".{venv.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be installing it right now
        if installed(venv):
            return venv
        started = time.monotonic()
        progress(f"installing {FEAST_REQUIREMENT} into {venv} (first use; ~600 MiB)")
        try:
            _run([sys.executable, "-m", "venv", "--clear", str(venv)], "create the venv")
            progress("venv created; pip install running")
            _run([str(venv / "bin" / "pip"), "install", "--disable-pip-version-check", "-q", FEAST_REQUIREMENT],
                 "pip install")
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        _marker(venv).write_text(FEAST_REQUIREMENT + "\n")
        progress(f"feast {FEAST_VERSION} installed in {time.monotonic() - started:.0f} s")
    return venv


def python(venv: Path | None = None) -> Path:
    """The venv's interpreter."""
    return (venv or venv_dir()) / "bin" / "python"


def _run(argv: list[str], what: str) -> None:
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise FeastInstallError(
            f"could not {what} for Feast: {' | '.join(tail) or f'exit {proc.returncode}'}",
            hint=f"check PyPI access, or install it yourself: python -m venv DIR && DIR/bin/pip install "
            f"'{FEAST_REQUIREMENT}', then set AETHER_FEAST_VENV=DIR",
        )
