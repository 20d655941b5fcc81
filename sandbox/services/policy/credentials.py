"""The Kraken API credentials projected into the pod (``KRAKEN_CREDENTIALS_DIR``: files ``api_key``, ``api_secret``).

Read once at start-up into :class:`~pydantic.SecretStr` (masked in every repr);
their values are never logged, only whether they were found. policy-service
itself makes no private venue calls today: the credentials are held for the
venue's private endpoints (e.g. account-level trading status) and their
presence is reported by ``GET /v1/reference``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

log = logging.getLogger("sandbox.services.policy.credentials")

MAX_BYTES = 16_384


@dataclass(frozen=True)
class KrakenCredentials:
    """An API key pair, or the reason there is none."""

    api_key: SecretStr | None
    api_secret: SecretStr | None
    state: str  # "loaded", "absent", "not configured"

    @property
    def loaded(self) -> bool:
        """Both files were read."""
        return self.api_key is not None and self.api_secret is not None


def _read(path: Path) -> SecretStr | None:
    try:
        if not path.is_file() or path.stat().st_size > MAX_BYTES:
            return None
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return SecretStr(text) if text else None


def load_credentials(directory: Path | None) -> KrakenCredentials:
    """Read ``api_key`` and ``api_secret`` from ``directory`` (missing or unreadable files: state ``absent``)."""
    if directory is None:
        return KrakenCredentials(None, None, "not configured")
    key, secret = _read(directory / "api_key"), _read(directory / "api_secret")
    if key is None or secret is None:
        log.warning("Kraken credentials not found", extra={"dir": str(directory),
                                                          "api_key": key is not None, "api_secret": secret is not None})
        return KrakenCredentials(None, None, "absent")
    log.info("Kraken credentials loaded", extra={"dir": str(directory)})
    return KrakenCredentials(key, secret, "loaded")
