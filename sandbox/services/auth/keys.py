"""Ed25519 signing keys: generated once, stored in the auth database, shared by replicas.

The private key is stored as PKCS#8 PEM, encrypted with AUTH_SIGNING_KEY_PASSPHRASE
when one is set; it never leaves the process otherwise. The public halves are
published as a JWKS document.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

log = logging.getLogger("sandbox.services.auth.keys")

KEYS_LOCK_KEY = 0x61757468_6B657973  # "authkeys"


class KeyUnavailable(RuntimeError):
    """The stored signing key cannot be loaded (wrong or missing passphrase)."""


@dataclass(frozen=True)
class SigningKey:
    """The active private key and its key id."""

    kid: str
    private_key: Ed25519PrivateKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_jwk(private_key: Ed25519PrivateKey) -> dict[str, str]:
    """The public JWK (with an RFC 7638 thumbprint as ``kid``)."""
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = _b64(raw)
    thumbprint = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    kid = _b64(hashlib.sha256(thumbprint.encode()).digest())
    return {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig"}


def serialize_private(private_key: Ed25519PrivateKey, passphrase: str | None) -> bytes:
    """PKCS#8 PEM, encrypted when ``passphrase`` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private(pem: bytes, encrypted: bool, passphrase: str | None) -> Ed25519PrivateKey:
    """Decode a stored key; :class:`KeyUnavailable` when the passphrase is missing or wrong."""
    if encrypted and not passphrase:
        raise KeyUnavailable("the stored signing key is encrypted: set AUTH_SIGNING_KEY_PASSPHRASE")
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase.encode() if encrypted and passphrase else None)
    except (ValueError, TypeError) as exc:
        raise KeyUnavailable("cannot decrypt the stored signing key: wrong AUTH_SIGNING_KEY_PASSPHRASE?") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyUnavailable("the stored signing key is not Ed25519")
    return key


async def ensure_signing_key(pool: asyncpg.Pool, passphrase: str | None) -> tuple[SigningKey, dict[str, Any]]:
    """Load the active key (creating it on first start) and the JWKS of every unretired key.

    Serialised by an advisory lock so replicas starting together agree on one key.
    """
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", KEYS_LOCK_KEY)
        row = await conn.fetchrow(
            "SELECT kid, private_key, encrypted FROM signing_keys WHERE retired_at IS NULL "
            "ORDER BY created_at DESC LIMIT 1"
        )
        if row is None:
            private_key = Ed25519PrivateKey.generate()
            jwk = public_jwk(private_key)
            await conn.execute(
                "INSERT INTO signing_keys (kid, algorithm, private_key, encrypted, public_jwk) "
                "VALUES ($1, 'EdDSA', $2, $3, $4::jsonb)",
                jwk["kid"], serialize_private(private_key, passphrase), bool(passphrase), json.dumps(jwk),
            )
            log.info("signing key generated", extra={"kid": jwk["kid"], "encrypted": bool(passphrase)})
            active = SigningKey(jwk["kid"], private_key)
        else:
            active = SigningKey(row["kid"], load_private(bytes(row["private_key"]), row["encrypted"], passphrase))
        rows = await conn.fetch("SELECT public_jwk FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at")
    jwks = {"keys": [json.loads(r["public_jwk"]) if isinstance(r["public_jwk"], str) else r["public_jwk"] for r in rows]}
    return active, jwks
