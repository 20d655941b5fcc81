"""Run a server as an unprivileged user when we are root.

PostgreSQL refuses to run as root (initdb and postgres both exit). CI and the
development containers run as root, so there the binaries run as ``nobody``
via :class:`subprocess.Popen`'s ``user``/``group`` arguments (no ``runuser``
wrapper process, so the PID we hold is the server's own). That user must be
able to reach its data directory, which rules out paths under a private home
such as ``/root``; :func:`check_reachable` says so before anything starts.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.infra.errors import DataDirError

#: The account servers run as when we are root.
UNPRIVILEGED_USER = "nobody"


@dataclass(frozen=True)
class Account:
    """A Unix account a server process runs as."""

    name: str
    uid: int
    gid: int

    def popen_options(self) -> dict[str, Any]:
        """Popen arguments that switch to this account (none when it is the current one)."""
        if self.uid == os.geteuid():
            return {}
        # extra_groups=[] drops root's supplementary groups too.
        return {"user": self.uid, "group": self.gid, "extra_groups": []}


def server_account() -> Account:
    """The account to run PostgreSQL as: ourselves, or ``nobody`` when we are root."""
    if os.geteuid() != 0:
        entry = pwd.getpwuid(os.geteuid())
        return Account(entry.pw_name, entry.pw_uid, os.getegid())
    try:
        entry = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError as exc:
        raise DataDirError(
            f"running as root and there is no '{UNPRIVILEGED_USER}' user to run PostgreSQL as",
            hint="run the sandbox as a non-root user, or create the user (useradd -r nobody)",
        ) from exc
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _can_traverse(path: Path, account: Account) -> bool:
    info = path.stat()
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == account.gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def check_reachable(directory: Path, account: Account) -> None:
    """Raise :class:`DataDirError` unless ``account`` can traverse every ancestor of ``directory``.

    ``directory`` itself is the caller's to fix (it owns it); its ancestors
    belong to the user, and changing their permissions behind their back would
    be wrong, so an unreachable ancestor is reported instead.
    """
    if account.uid == os.geteuid():
        return
    for ancestor in reversed(directory.absolute().parents):
        if not _can_traverse(ancestor, account):
            raise DataDirError(
                f"{directory} is not reachable by user '{account.name}' ({ancestor} is not searchable by it)",
                hint=(
                    "as root PostgreSQL runs as 'nobody': put the sandbox data directory "
                    "under a world-searchable path (e.g. /var/tmp/aether-sandbox or a "
                    "directory in the project), or run as a non-root user"
                ),
            )


def give_to(path: Path, account: Account, *, recursive: bool = False) -> None:
    """Make ``account`` the owner of ``path`` (and its contents when ``recursive``)."""
    if account.uid == os.geteuid():
        return
    paths = [path]
    if recursive:
        paths.extend(path.rglob("*"))
    for item in paths:
        if item.lstat().st_uid != account.uid:
            os.chown(item, account.uid, account.gid, follow_symlinks=False)

