"""TLS settings for the database: every mode, every inconsistent combination, unusable files, env parsing."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import ValidationError

from sandbox.services.capital_allocator.dbssl import SslConfigError, SslSettings, build_ssl, describe, dsn_ssl_params
from sandbox.services.capital_allocator.settings import CapitalAllocatorSettings

DSN = "postgresql://u:secret-pw@127.0.0.1:5432/capital_allocator"


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
          ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, data: bytes) -> str:
    path.write_bytes(data)
    path.chmod(0o600)
    return str(path)


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, str]:
    """A CA, a client certificate and key signed by it, a foreign key, an encrypted key, junk."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("test-ca", ca_key, None, ca=True)
    client_key = ec.generate_private_key(ec.SECP256R1())
    client = _cert("capital-allocator", client_key, ("test-ca", ca_key), ca=False)
    other_key = ec.generate_private_key(ec.SECP256R1())
    pem = serialization.Encoding.PEM
    plain = serialization.NoEncryption()
    pkcs8 = serialization.PrivateFormat.PKCS8
    key_bytes = client_key.private_bytes(pem, pkcs8, plain)
    return {
        "ca": _write(tmp_path / "ca.crt", ca.public_bytes(pem)),
        "cert": _write(tmp_path / "client.crt", client.public_bytes(pem)),
        "key": _write(tmp_path / "client.key", key_bytes),
        "combined": _write(tmp_path / "combined.pem", client.public_bytes(pem) + key_bytes),
        "other_key": _write(tmp_path / "other.key", other_key.private_bytes(pem, pkcs8, plain)),
        "encrypted_key": _write(tmp_path / "enc.key", client_key.private_bytes(
            pem, pkcs8, serialization.BestAvailableEncryption(b"pw"))),
        "junk": _write(tmp_path / "junk.pem", b"not a certificate\n"),
        "missing": str(tmp_path / "nope.crt"),
    }


def test_absent_settings_leave_asyncpg_defaults() -> None:
    assert build_ssl(SslSettings(), DSN) is None
    assert build_ssl(SslSettings(), DSN + "?sslmode=require") is None  # the DSN's own TLS is fine alone
    assert describe(None) == "default (dsn or prefer)"


def test_disable_is_plain_tcp_and_allow_prefer_pass_through() -> None:
    assert build_ssl(SslSettings(mode="disable"), DSN) is False
    assert build_ssl(SslSettings(mode="prefer"), DSN) == "prefer"
    assert build_ssl(SslSettings(mode="allow"), DSN) == "allow"


def test_require_encrypts_without_verification_unless_a_ca_is_given(pki: dict[str, str]) -> None:
    ctx = build_ssl(SslSettings(mode="require"), DSN)
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_NONE and not ctx.check_hostname
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert describe(ctx) == "require"
    ctx = build_ssl(SslSettings(mode="require", rootcert=pki["ca"]), DSN)
    assert isinstance(ctx, ssl.SSLContext) and ctx.verify_mode == ssl.CERT_REQUIRED  # as libpq does


def test_verify_modes_check_the_server(pki: dict[str, str]) -> None:
    ca = build_ssl(SslSettings(mode="verify-ca", rootcert=pki["ca"]), DSN)
    assert isinstance(ca, ssl.SSLContext) and ca.verify_mode == ssl.CERT_REQUIRED and not ca.check_hostname
    assert len(ca.get_ca_certs()) == 1 and describe(ca) == "verify-ca"
    full = build_ssl(SslSettings(mode="verify-full", rootcert=pki["ca"], cert=pki["cert"], key=pki["key"]), DSN)
    assert isinstance(full, ssl.SSLContext) and full.check_hostname and describe(full) == "verify-full"
    system = build_ssl(SslSettings(mode="verify-full", rootcert="system"), DSN)
    assert isinstance(system, ssl.SSLContext) and system.verify_mode == ssl.CERT_REQUIRED


def test_a_certificate_file_holding_its_key_needs_no_key_setting(pki: dict[str, str]) -> None:
    assert isinstance(build_ssl(SslSettings(mode="require", cert=pki["combined"]), DSN), ssl.SSLContext)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (dict(mode="disable", rootcert="ca"), "CAPITAL_ALLOCATOR_DB_SSLMODE=disable cannot use CAPITAL_ALLOCATOR_DB_SSLROOTCERT"),
        (dict(mode="prefer", cert="cert", key="key"), "certificates need sslmode require, verify-ca or verify-full"),
        (dict(mode="verify-full"), "verify-full needs CAPITAL_ALLOCATOR_DB_SSLROOTCERT"),
        (dict(mode="verify-ca", cert="cert", key="key"), "verify-ca needs CAPITAL_ALLOCATOR_DB_SSLROOTCERT"),
        (dict(mode="require", key="key"), "CAPITAL_ALLOCATOR_DB_SSLKEY is set without CAPITAL_ALLOCATOR_DB_SSLCERT"),
        (dict(rootcert="ca"), "given without CAPITAL_ALLOCATOR_DB_SSLMODE"),
        (dict(mode="required"), "'required' is not one of disable, allow, prefer, require"),
        (dict(mode="require", rootcert="missing"), "CAPITAL_ALLOCATOR_DB_SSLROOTCERT: "),
        (dict(mode="require", rootcert="junk"), "CAPITAL_ALLOCATOR_DB_SSLROOTCERT: not a usable PEM CA certificate"),
        (dict(mode="require", cert="cert"), "cannot load the client certificate and key"),
        (dict(mode="require", cert="cert", key="other_key"), "the key must match the certificate"),
        (dict(mode="require", cert="cert", key="missing"), "CAPITAL_ALLOCATOR_DB_SSLKEY: "),
        (dict(mode="require", cert="cert", key="encrypted_key"), "encrypted private keys are not supported"),
    ],
)
def test_inconsistent_combinations_are_clear_errors(pki: dict[str, str], settings: dict[str, str], message: str) -> None:
    resolved = {k: pki.get(v, v) if k != "mode" else v for k, v in settings.items()}
    with pytest.raises(SslConfigError) as err:
        build_ssl(SslSettings(**resolved), DSN)
    assert message in str(err.value)


def test_tls_in_the_dsn_and_in_the_env_is_a_conflict(pki: dict[str, str]) -> None:
    assert dsn_ssl_params(DSN + "?sslmode=require&application_name=x&SSLRootCert=/x") == ["sslmode", "sslrootcert"]
    with pytest.raises(SslConfigError, match="configure TLS in one place only"):
        build_ssl(SslSettings(mode="disable"), DSN + "?sslmode=require")


def _env(monkeypatch: pytest.MonkeyPatch, **values: str) -> None:
    for name in ("CAPITAL_ALLOCATOR_DB_URL", "CAPITAL_ALLOCATOR_DB_SSLMODE", "CAPITAL_ALLOCATOR_DB_SSLROOTCERT",
                 "CAPITAL_ALLOCATOR_DB_SSLCERT", "CAPITAL_ALLOCATOR_DB_SSLKEY", "CAPITAL_ALLOCATOR_CACHE_POLL_S"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)


def test_settings_read_the_spec_names_and_treat_blank_as_unset(monkeypatch: pytest.MonkeyPatch, pki: dict[str, str]) -> None:
    _env(monkeypatch, CAPITAL_ALLOCATOR_DB_URL=DSN, CAPITAL_ALLOCATOR_DB_SSLMODE=" ", CAPITAL_ALLOCATOR_DB_SSLKEY="")
    settings = CapitalAllocatorSettings()
    assert settings.database_url == DSN and settings.db_ssl() is None and settings.cache_poll_s == 5.0
    _env(monkeypatch, CAPITAL_ALLOCATOR_DB_URL=DSN, CAPITAL_ALLOCATOR_DB_SSLMODE="verify-ca",
         CAPITAL_ALLOCATOR_DB_SSLROOTCERT=pki["ca"], CAPITAL_ALLOCATOR_DB_SSLCERT=pki["cert"],
         CAPITAL_ALLOCATOR_DB_SSLKEY=pki["key"])
    assert isinstance(CapitalAllocatorSettings().db_ssl(), ssl.SSLContext)


def test_settings_errors_name_the_variable_and_never_echo_the_dsn(monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch)
    with pytest.raises(ValidationError, match="CAPITAL_ALLOCATOR_DB_URL"):
        CapitalAllocatorSettings()
    _env(monkeypatch, CAPITAL_ALLOCATOR_DB_URL="mysql://u:secret-pw@h/db")
    with pytest.raises(ValidationError) as err:
        CapitalAllocatorSettings()
    assert "postgresql:// URL" in str(err.value) and "secret-pw" not in str(err.value)
    _env(monkeypatch, CAPITAL_ALLOCATOR_DB_URL=DSN, CAPITAL_ALLOCATOR_DB_SSLMODE="disable",
         CAPITAL_ALLOCATOR_DB_SSLCERT="/etc/x.crt")
    with pytest.raises(ValidationError) as err:
        CapitalAllocatorSettings()
    assert "disable cannot use CAPITAL_ALLOCATOR_DB_SSLCERT" in str(err.value)
    assert "secret-pw" not in str(err.value)
