"""Envelope encryption of Kraken key pairs with AES-256-GCM and a versioned key ring.

Every record gets a fresh 256-bit data key (DEK). The secret payload is sealed
with the DEK; the DEK is wrapped with the *master key* of the current version.
Both seals are AES-256-GCM with a random 96-bit nonce and associated data that
binds the ciphertext to its record (record id and account), so a ciphertext
copied into another row, or a wrapped key relabelled with another version,
fails authentication instead of decrypting.

Why envelope encryption rather than sealing the payload with the master key:
rotating the master key only re-wraps 32-byte data keys (the payload
ciphertext is left untouched), the master key never touches bulk data, and a
full re-key of the data keys stays possible (``rotate_data_keys``). Each DEK
seals exactly one payload, so nonce reuse under a DEK cannot happen; master
keys wrap one DEK per record write, far below the 2**32 random-nonce bound.

No function here puts key material or plaintext into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import uuid
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

NONCE_BYTES = 12
KEY_BYTES = 32
_AAD_PREFIX = b"aether-secrets/v1"


class KeyRingError(ValueError):
    """SECRETS_ENCRYPTION_KEY is malformed (the message never contains key material)."""


class IntegrityError(Exception):
    """A stored ciphertext failed authentication: it was altered or sealed under another key."""


class UnknownKeyVersion(Exception):
    """A record was sealed under a master-key version this key ring does not hold."""

    def __init__(self, version: int) -> None:
        super().__init__(f"master key version {version} is not in the key ring")
        self.version = version


def _decode_key(text: object, version: int) -> bytes:
    """Decode one base64 master key, checking it is exactly 32 bytes."""
    if not isinstance(text, str):
        raise KeyRingError(f"key version {version}: expected a base64 string")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyRingError(f"key version {version}: not valid base64") from None
    if len(raw) != KEY_BYTES:
        raise KeyRingError(f"key version {version}: decodes to {len(raw)} bytes, expected {KEY_BYTES} (AES-256)")
    return raw


@dataclass(frozen=True)
class KeyRing:
    """Master keys by version; the highest version is current and seals new data."""

    keys: dict[int, bytes]

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("the key ring is empty")

    def __repr__(self) -> str:  # never show key bytes, even in a debugger or traceback
        return f"KeyRing(versions={sorted(self.keys)}, current={self.current_version})"

    @property
    def current_version(self) -> int:
        """The version new ciphertexts are sealed under."""
        return max(self.keys)

    @property
    def versions(self) -> list[int]:
        """Every version this ring can open, ascending."""
        return sorted(self.keys)

    def key(self, version: int) -> bytes:
        """The master key of ``version``; :class:`UnknownKeyVersion` when absent."""
        try:
            return self.keys[version]
        except KeyError:
            raise UnknownKeyVersion(version) from None

    @classmethod
    def parse(cls, value: str) -> KeyRing:
        """Parse SECRETS_ENCRYPTION_KEY: one base64 key (version 1) or a JSON map ``{"1": "...", "2": "..."}``."""
        text = value.strip()
        if not text:
            raise KeyRingError("SECRETS_ENCRYPTION_KEY is empty")
        if not text.startswith("{"):
            return cls({1: _decode_key(text, 1)})
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError:
            raise KeyRingError("SECRETS_ENCRYPTION_KEY looks like JSON but does not parse") from None
        if not isinstance(mapping, dict) or not mapping:
            raise KeyRingError("SECRETS_ENCRYPTION_KEY must be a non-empty JSON object of version -> base64 key")
        keys: dict[int, bytes] = {}
        for name, encoded in mapping.items():
            if not (isinstance(name, str) and name.isascii() and name.isdigit()) or not 1 <= int(name) <= 1_000_000:
                raise KeyRingError(f"key version {name!r} is not an integer between 1 and 1000000")
            keys[int(name)] = _decode_key(encoded, int(name))
        if len(set(keys.values())) != len(keys):
            raise KeyRingError("two key versions share the same key")
        return cls(keys)


@dataclass(frozen=True)
class Sealed:
    """What is stored for one record: the master-key version, the wrapped DEK and the payload ciphertext."""

    key_version: int
    wrapped_key: bytes  # nonce || AES-GCM(master[v], DEK)
    ciphertext: bytes  # nonce || AES-GCM(DEK, payload)

    def __repr__(self) -> str:
        return f"Sealed(key_version={self.key_version}, wrapped_key=<{len(self.wrapped_key)} bytes>, ciphertext=<{len(self.ciphertext)} bytes>)"


def _payload_aad(record_id: uuid.UUID, account: str) -> bytes:
    return b"|".join((_AAD_PREFIX, b"payload", record_id.bytes, account.encode()))


def _wrap_aad(record_id: uuid.UUID, account: str, version: int) -> bytes:
    return b"|".join((_AAD_PREFIX, b"dek", record_id.bytes, account.encode(), str(version).encode()))


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, blob: bytes, aad: bytes) -> bytes:
    if len(blob) < NONCE_BYTES + 16:
        raise IntegrityError("ciphertext is truncated")
    try:
        return AESGCM(key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], aad)
    except InvalidTag:
        raise IntegrityError("ciphertext failed authentication") from None


def wrap_key(ring: KeyRing, dek: bytes, record_id: uuid.UUID, account: str, version: int | None = None) -> tuple[int, bytes]:
    """Wrap a data key under master ``version`` (default: current); returns (version, wrapped)."""
    version = ring.current_version if version is None else version
    return version, _seal(ring.key(version), dek, _wrap_aad(record_id, account, version))


def unwrap_key(ring: KeyRing, sealed: Sealed, record_id: uuid.UUID, account: str) -> bytes:
    """Recover the data key of a record (raises :class:`IntegrityError` or :class:`UnknownKeyVersion`)."""
    dek = _open(ring.key(sealed.key_version), sealed.wrapped_key, _wrap_aad(record_id, account, sealed.key_version))
    if len(dek) != KEY_BYTES:
        raise IntegrityError("unwrapped data key has the wrong length")
    return dek


def seal(ring: KeyRing, plaintext: bytes, record_id: uuid.UUID, account: str) -> Sealed:
    """Encrypt ``plaintext`` for one record under a fresh data key wrapped by the current master key."""
    dek = AESGCM.generate_key(bit_length=256)
    ciphertext = _seal(dek, plaintext, _payload_aad(record_id, account))
    version, wrapped = wrap_key(ring, dek, record_id, account)
    return Sealed(version, wrapped, ciphertext)


def open_sealed(ring: KeyRing, sealed: Sealed, record_id: uuid.UUID, account: str) -> bytes:
    """Decrypt a record's payload; raises :class:`IntegrityError` or :class:`UnknownKeyVersion`."""
    dek = unwrap_key(ring, sealed, record_id, account)
    return _open(dek, sealed.ciphertext, _payload_aad(record_id, account))


def rewrap(ring: KeyRing, sealed: Sealed, record_id: uuid.UUID, account: str, *, new_data_key: bool = False) -> Sealed:
    """Move a record to the current master-key version.

    Without ``new_data_key`` only the DEK is re-wrapped (the payload ciphertext is
    kept byte for byte); with it, the payload is decrypted and sealed again under
    a fresh DEK. Both paths authenticate the old ciphertext first, so a tampered
    record is reported, never silently re-sealed.
    """
    if new_data_key:
        return seal(ring, open_sealed(ring, sealed, record_id, account), record_id, account)
    dek = unwrap_key(ring, sealed, record_id, account)
    _open(dek, sealed.ciphertext, _payload_aad(record_id, account))  # refuse to re-wrap a broken payload
    version, wrapped = wrap_key(ring, dek, record_id, account)
    return Sealed(version, wrapped, sealed.ciphertext)
