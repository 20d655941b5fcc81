"""The Debian base of the offline image set: debootstrap, cache, ``docker import``.

Where no registry is reachable no base image can be pulled, but Debian's
package mirror can be: debootstrap builds a minimal bookworm root file system
(``minbase``), which is packed into a tarball cached under the sandbox cache
directory (keyed by suite, mirror, variant and package list) and imported as
the image :data:`BASE_TAG`, labelled with the same key.  A second build finds
the tarball and the labelled image and does neither step again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sandbox.errors import EnvironmentProblem
from sandbox.runtimes.docker.steps import ImageBuildFailed, Progress, run_step

BASE_TAG = "aether-sandbox/debian-offline:bookworm"
#: The image label holding the root file system's cache key.
KEY_LABEL = "org.aether-sandbox.rootfs-key"
#: Bump when :func:`_configure` changes what goes into the root file system.
RECIPE_VERSION = 1

_APT_CONF = """\
// The offline images stay lean: no recommended or suggested packages, no translations.
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
"""

_DPKG_NODOC = """\
# No manuals or docs in the images (copyright files are kept).
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
"""


@dataclass(frozen=True)
class RootfsRecipe:
    """What debootstrap installs; every field is part of the cache key."""

    suite: str = "bookworm"
    mirror: str = "http://deb.debian.org/debian"
    security_mirror: str = "http://deb.debian.org/debian-security"
    variant: str = "minbase"
    packages: tuple[str, ...] = ("ca-certificates",)
    arch: str = field(default_factory=lambda: host_arch())

    def key(self) -> str:
        """A short stable hash of the recipe (and :data:`RECIPE_VERSION`)."""
        blob = json.dumps({**asdict(self), "recipe": RECIPE_VERSION}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def sources_list(self) -> str:
        """APT sources of the image: the release, its updates and security fixes."""
        return (f"deb {self.mirror} {self.suite} main\n"
                f"deb {self.mirror} {self.suite}-updates main\n"
                f"deb {self.security_mirror} {self.suite}-security main\n")


def host_arch() -> str:
    """The Debian architecture name of this machine."""
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def ensure_debootstrap(progress: Progress | None) -> str:
    """The debootstrap command; installs it with apt-get when missing and we are root.

    Raises :class:`EnvironmentProblem` with the install hint otherwise.
    """
    if path := shutil.which("debootstrap"):
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        if progress:
            progress("debootstrap is not installed: installing it with apt-get (we are root)")
        run_step(["apt-get", "update", "-q"], what="apt-get update", progress=progress)
        run_step(["apt-get", "install", "-y", "-q", "--no-install-recommends", "debootstrap"],
                 what="apt-get install debootstrap", progress=progress,
                 env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if path := shutil.which("debootstrap"):
            return path
    raise EnvironmentProblem("debootstrap is not installed: the offline images are built from a Debian root file system",
                             hint="apt-get install debootstrap (as root), then run `aether-sandbox images build --offline` again")


def _configure(root: Path, recipe: RootfsRecipe) -> None:
    """Make the fresh root file system a lean image base: sources, apt and dpkg settings, no caches."""
    (root / "etc/apt/sources.list").write_text(recipe.sources_list())
    (root / "etc/apt/apt.conf.d/90aether-sandbox").write_text(_APT_CONF)
    (root / "etc/dpkg/dpkg.cfg.d").mkdir(parents=True, exist_ok=True)
    (root / "etc/dpkg/dpkg.cfg.d/90aether-sandbox-nodoc").write_text(_DPKG_NODOC)
    for cache in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for entry in (root / cache).glob("*"):
            if entry.is_file():
                entry.unlink()
    for stale in (root / "var/cache/apt").glob("*.bin"):
        stale.unlink()


def rootfs_tarball(recipe: RootfsRecipe, cache_dir: Path, progress: Progress | None) -> tuple[Path, bool]:
    """The cached root file system tarball of ``recipe``, built with debootstrap when absent.

    Returns ``(path, was_cached)``.  The tarball appears atomically, so an
    interrupted build leaves no half tarball to be trusted later.
    """
    target = cache_dir / "debian" / f"{recipe.suite}-{recipe.variant}-{recipe.key()}.tar"
    if target.is_file():
        return target, True
    if os.geteuid() != 0:
        raise EnvironmentProblem("debootstrap needs root to build the offline image base",
                                 hint="run `aether-sandbox images build --offline` as root once; later builds reuse the cached tarball")
    debootstrap = ensure_debootstrap(progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Builds hold the cache's lock, so any work directory here is a killed build's leftover.
    for stale in target.parent.glob("rootfs-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix="rootfs-", dir=target.parent))
    try:
        root = work / "root"
        if progress:
            progress(f"debootstrap {recipe.variant} {recipe.suite} from {recipe.mirror} (a few minutes the first time)")
        run_step([debootstrap, f"--variant={recipe.variant}", f"--arch={recipe.arch}",
                  "--include=" + ",".join(recipe.packages), recipe.suite, str(root), recipe.mirror],
                 what="debootstrap", progress=progress,
                 hint=f"check that {recipe.mirror} is reachable (curl -I {recipe.mirror}/dists/{recipe.suite}/Release)")
        _configure(root, recipe)
        partial = work / "rootfs.tar"
        run_step(["tar", "--numeric-owner", "-C", str(root), "-cf", str(partial), "."],
                 what="packing the root file system", progress=progress)
        os.replace(partial, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target, False


def _label_of(tag: str) -> str | None:
    out = subprocess.run(["docker", "image", "inspect", "--format", f'{{{{index .Config.Labels "{KEY_LABEL}"}}}}', tag],
                         capture_output=True, text=True, check=False)
    return out.stdout.strip() if out.returncode == 0 else None


def import_base(recipe: RootfsRecipe, cache_dir: Path, progress: Progress | None,
                tag: str = BASE_TAG) -> tuple[str, bool]:
    """Make ``tag`` (default :data:`BASE_TAG`) the imported root file system of ``recipe``.

    Returns ``(tag, was_cached)``; skips debootstrap and the import when the
    image already carries the recipe's key.
    """
    key = recipe.key()
    if _label_of(tag) == key:
        return tag, True
    tarball, _ = rootfs_tarball(recipe, cache_dir, progress)
    if progress:
        progress(f"docker import {tarball.name} as {tag}")
    changes = [f"LABEL {KEY_LABEL}={key}", "ENV LANG=C.UTF-8", 'CMD ["/bin/bash"]']
    argv = ["docker", "import"] + [arg for change in changes for arg in ("--change", change)] + [str(tarball), tag]
    run_step(argv, what="docker import", progress=progress)
    if _label_of(tag) != key:
        raise ImageBuildFailed(f"docker import did not produce {tag} with {KEY_LABEL}={key}")
    return tag, False
