"""The state directory of one local sandbox: data, logs, ports and credentials.

Each sandbox name has its own directory, so two sandboxes can coexist.  As
root the default lives under ``/var/lib`` (PostgreSQL then runs as ``nobody``
and must be able to reach its data, which rules out ``/root``); otherwise under
the user's XDG state directory.  ``AETHER_SANDBOX_HOME`` overrides both.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_NAME = "default"


def state_root() -> Path:
    """Where every sandbox's state directory lives."""
    if home := os.environ.get("AETHER_SANDBOX_HOME"):
        return Path(home)
    if os.geteuid() == 0:
        return Path("/var/lib/aether-sandbox")
    xdg = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(xdg) / "aether-sandbox"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    """Write JSON readable by the owner only, atomically."""
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.replace(tmp, path)


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (readers never see half a file)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    """The JSON in ``path``, or ``None`` when it is absent or half-written."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class StateDir:
    """Paths of one sandbox's state."""

    root: Path
    name: str

    @classmethod
    def for_name(cls, name: str = DEFAULT_NAME, root: Path | None = None) -> StateDir:
        """The state directory of sandbox ``name``."""
        return cls((root or state_root()) / name, name)

    @property
    def key(self) -> str:
        """A name for host-wide resources (cgroups, compose projects): the sandbox's name plus a
        digest of its directory, so same-named sandboxes under different state roots never share one."""
        slug = re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "sandbox"
        digest = hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:8]
        return f"{slug}-{digest}"

    def ensure(self) -> StateDir:
        """Create the directory (searchable by the PostgreSQL account, writable by us only)."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o711)
        return self

    def data(self, component: str) -> Path:
        """Data and log directory of ``component``."""
        return self.root / "components" / component

    @property
    def supervisor_json(self) -> Path:
        """PID and start time of the supervisor."""
        return self.root / "supervisor.json"

    @property
    def supervisor_log(self) -> Path:
        return self.root / "supervisor.log"

    @property
    def status_json(self) -> Path:
        """The supervisor's latest view of every component."""
        return self.root / "status.json"

    @property
    def control_socket(self) -> Path:
        """Unix socket the supervisor takes commands on."""
        return self.root / "control.sock"

    @property
    def plan_json(self) -> Path:
        """The process plan the supervisor runs."""
        return self.root / "plan.json"

    @property
    def credentials_json(self) -> Path:
        return self.root / "credentials.json"

    def credentials(self) -> tuple[dict[str, str], bool]:
        """Per-sandbox credentials (created on first use, owner-only); and whether they are new."""
        existing = read_json(self.credentials_json)
        if isinstance(existing, dict):
            return existing, False
        creds = {
            "bootstrap_admin_password": secrets.token_urlsafe(18),
            "secrets_encryption_key": json.dumps({"1": base64.b64encode(secrets.token_bytes(32)).decode()}),
            "service_client_id": "aether-platform",
            "service_client_secret": secrets.token_urlsafe(24),
            "kraken_api_key": secrets.token_urlsafe(42),
            "kraken_api_secret": base64.b64encode(secrets.token_bytes(64)).decode(),
        }
        _write_private(self.credentials_json, creds)
        return creds, True


def write_kraken_credentials(state: StateDir, creds: dict[str, str], *, mode: int = 0o600) -> Path:
    """The sandbox's Kraken API credentials as files (``api_key``, ``api_secret``) under the state directory.

    The layout Kubernetes projects at ``/var/run/secrets/kraken``; both runtimes
    hand this directory to the components (the docker runtime mounts it read-only).
    """
    directory = state.root / "secrets" / "kraken"
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    for key, field in (("api_key", "kraken_api_key"), ("api_secret", "kraken_api_secret")):
        path = directory / key
        if not path.exists():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, mode)
            with os.fdopen(fd, "w") as handle:
                handle.write(creds[field])
    return directory
