"""TLS for the database connection, from the optional ``CAPITAL_ALLOCATOR_DB_SSL*`` settings.

In the platform these come from the capital-allocator ExternalSecret. The
result is what asyncpg takes as its ``ssl`` argument (for the pool and the
LISTEN connection alike):

=================  ==================================================================
``SSLMODE``        passed to asyncpg
=================  ==================================================================
absent             ``None``: asyncpg's default (the DSN's ``sslmode``, else ``prefer``)
``disable``        ``False``: plain TCP
``allow/prefer``   the mode string: TLS when the server offers it (no certificates)
``require``        an ``SSLContext`` that encrypts; verifies the server only when a
                   root certificate is given (as libpq does)
``verify-ca``      an ``SSLContext`` verifying the server certificate against ``SSLROOTCERT``
``verify-full``    the same plus a host-name check
=================  ==================================================================

``SSLROOTCERT`` may be ``system`` (the operating system's CA store).
``SSLCERT`` / ``SSLKEY`` are the client certificate and its (unencrypted) key;
a certificate whose file also holds the key needs no ``SSLKEY``. Every
inconsistent combination is a :class:`SslConfigError` naming the variable,
raised while the settings are read, so the service refuses to start with a
one-line reason instead of failing on its first connection.
"""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
#: Query parameters of a DSN through which asyncpg would configure TLS itself.
DSN_SSL_PARAMS = frozenset({
    "sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword", "sslcrl", "ssl",
    "ssl_min_protocol_version", "ssl_max_protocol_version", "sslnegotiation",
})
ENV_MODE = "CAPITAL_ALLOCATOR_DB_SSLMODE"
ENV_ROOTCERT = "CAPITAL_ALLOCATOR_DB_SSLROOTCERT"
ENV_CERT = "CAPITAL_ALLOCATOR_DB_SSLCERT"
ENV_KEY = "CAPITAL_ALLOCATOR_DB_SSLKEY"
SYSTEM_ROOTS = "system"

#: What asyncpg accepts as ``ssl=``.
SslOption = ssl.SSLContext | str | bool | None


class SslConfigError(ValueError):
    """The SSL settings are inconsistent or a file cannot be used; the message names the variable."""


@dataclass(frozen=True)
class SslSettings:
    """The raw optional settings (empty strings already mapped to ``None``)."""

    mode: str | None = None
    rootcert: str | None = None
    cert: str | None = None
    key: str | None = None

    @property
    def any_set(self) -> bool:
        """Whether any SSL setting was given."""
        return any(v is not None for v in (self.mode, self.rootcert, self.cert, self.key))

    @property
    def files(self) -> dict[str, str]:
        """The certificate/key settings that were given, by environment variable name."""
        named = {ENV_ROOTCERT: self.rootcert, ENV_CERT: self.cert, ENV_KEY: self.key}
        return {name: value for name, value in named.items() if value is not None}


def dsn_ssl_params(dsn: str) -> list[str]:
    """The TLS-related query parameters a DSN carries (lower-cased, sorted)."""
    try:
        query = urlsplit(dsn).query
    except ValueError:
        return []
    return sorted({k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)} & DSN_SSL_PARAMS)


def _readable_file(env: str, value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise SslConfigError(f"{env}: {value} is not a file")
    if not os.access(path, os.R_OK):
        raise SslConfigError(f"{env}: {value} is not readable")
    return path


def _no_password() -> bytes:
    # Called by OpenSSL only for an encrypted key: never prompt on a terminal.
    raise SslConfigError(f"{ENV_KEY}: encrypted private keys are not supported")


def _context(cfg: SslSettings, mode: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if cfg.rootcert is not None:
        try:
            if cfg.rootcert == SYSTEM_ROOTS:
                ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
            else:
                ctx.load_verify_locations(cafile=str(_readable_file(ENV_ROOTCERT, cfg.rootcert)))
        except ssl.SSLError as exc:
            raise SslConfigError(f"{ENV_ROOTCERT}: not a usable PEM CA certificate ({exc.reason or exc})") from None
        ctx.verify_mode = ssl.CERT_REQUIRED
    if mode == "verify-full":
        ctx.check_hostname = True
    if cfg.cert is not None:
        cert = _readable_file(ENV_CERT, cfg.cert)
        key = _readable_file(ENV_KEY, cfg.key) if cfg.key is not None else None
        try:
            ctx.load_cert_chain(str(cert), str(key) if key else None, password=_no_password)
        except ssl.SSLError as exc:
            what = f"{ENV_CERT} and {ENV_KEY}" if key else f"{ENV_CERT} (no {ENV_KEY} given)"
            raise SslConfigError(
                f"{what}: cannot load the client certificate and key ({exc.reason or exc});"
                " they must be PEM files and the key must match the certificate"
            ) from None
    return ctx


def build_ssl(cfg: SslSettings, dsn: str = "") -> SslOption:
    """The asyncpg ``ssl`` argument for ``cfg`` (see the module table); raises :class:`SslConfigError`."""
    if not cfg.any_set:
        return None
    in_dsn = dsn_ssl_params(dsn)
    if in_dsn:
        raise SslConfigError(
            f"CAPITAL_ALLOCATOR_DB_URL sets {', '.join(in_dsn)} and CAPITAL_ALLOCATOR_DB_SSL* are set too:"
            " configure TLS in one place only"
        )
    mode = cfg.mode
    if mode is None:
        raise SslConfigError(
            f"{', '.join(cfg.files)} given without {ENV_MODE}: set it to require, verify-ca or verify-full"
        )
    if mode not in SSLMODES:
        raise SslConfigError(f"{ENV_MODE}: {mode!r} is not one of {', '.join(SSLMODES)}")
    if mode in ("disable", "allow", "prefer") and cfg.files:
        raise SslConfigError(
            f"{ENV_MODE}={mode} cannot use {', '.join(cfg.files)}:"
            " certificates need sslmode require, verify-ca or verify-full"
        )
    if mode == "disable":
        return False
    if mode in ("allow", "prefer"):
        return mode
    if cfg.key is not None and cfg.cert is None:
        raise SslConfigError(f"{ENV_KEY} is set without {ENV_CERT}: a client key needs its certificate")
    if mode in ("verify-ca", "verify-full") and cfg.rootcert is None:
        raise SslConfigError(
            f"{ENV_MODE}={mode} needs {ENV_ROOTCERT} (a CA file, or 'system' for the system CA store)"
        )
    return _context(cfg, mode)


def describe(option: SslOption) -> str:
    """A short description for logs and the health report (no paths, no secrets)."""
    if option is None:
        return "default (dsn or prefer)"
    if option is False:
        return "disabled"
    if isinstance(option, str):
        return option
    assert isinstance(option, ssl.SSLContext)
    if option.check_hostname:
        return "verify-full"
    return "verify-ca" if option.verify_mode == ssl.CERT_REQUIRED else "require"
