"""The compose command line: the v2 plugin (``docker compose``) where present, else ``docker-compose`` v1.

Both accept the generated files (Compose Specification, no ``version``
key; v1 needs 1.28 or later for ``profiles``).  One :class:`Compose` is
bound to a project name, its files and its env file.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sandbox.runtimes.base import EngineUnavailable


@functools.lru_cache(maxsize=1)
def compose_command() -> tuple[str, ...]:
    """The argv prefix of the compose CLI on this machine."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True, check=False)
        if probe.returncode == 0:
            return ("docker", "compose")
    if shutil.which("docker-compose"):
        return ("docker-compose",)
    raise EngineUnavailable(
        "neither `docker compose` nor `docker-compose` is installed",
        hint="install the compose plugin (apt-get install docker-compose-plugin) or docker-compose 1.28+",
    )


def describe() -> str:
    """Which compose CLI is used, for notes."""
    return "compose v2 plugin" if compose_command() == ("docker", "compose") else "docker-compose v1"


@dataclass(frozen=True)
class Compose:
    """The compose CLI for one project."""

    project: str
    files: Sequence[Path]
    env_file: Path
    profiles: Sequence[str] = ("minimal", "full", "observability")

    def argv(self, *args: str) -> list[str]:
        """The full command line for compose sub-command ``args``."""
        argv = [*compose_command(), "--project-name", self.project, "--env-file", str(self.env_file)]
        for path in self.files:
            argv += ["--file", str(path)]
        for profile in self.profiles:
            argv += ["--profile", profile]
        return [*argv, *args]

    def run(self, *args: str, timeout: float = 300.0) -> subprocess.CompletedProcess[str]:
        """Run a sub-command to completion, capturing its output."""
        return subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, *args: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a sub-command in the background, its output appended to ``log``."""
        with log.open("ab") as handle:
            return subprocess.Popen(self.argv(*args), stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT)  # noqa: S603
