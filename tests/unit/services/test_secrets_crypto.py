"""Envelope encryption and the key ring of secrets-service (pure, no servers)."""

from __future__ import annotations

import base64
import json
import os
import uuid

import pytest

from sandbox.services.secrets import crypto
from sandbox.services.secrets.crypto import IntegrityError, KeyRing, KeyRingError, Sealed, UnknownKeyVersion


def b64key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing.parse(json.dumps({"1": b64key(), "2": b64key()}))


RID = uuid.UUID("12345678-1234-5678-1234-567812345678")


def test_single_key_is_version_one() -> None:
    ring = KeyRing.parse(b64key())
    assert ring.versions == [1] and ring.current_version == 1


def test_json_map_highest_version_is_current() -> None:
    ring = KeyRing.parse(json.dumps({"3": b64key(), "10": b64key(), "1": b64key()}))
    assert ring.versions == [1, 3, 10]
    assert ring.current_version == 10


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("", "empty"),
        ("not base64!!", "not valid base64"),
        (base64.b64encode(b"short").decode(), "expected 32"),
        ("{not json", "does not parse"),
        ("{}", "non-empty"),
        ('{"one": "x"}', "not an integer"),
        ('{"0": "x"}', "not an integer"),
        ('{"1": 5}', "base64 string"),
    ],
)
def test_bad_key_rings_are_rejected(value: str, fragment: str) -> None:
    with pytest.raises(KeyRingError, match=fragment):
        KeyRing.parse(value)


def test_key_ring_errors_and_repr_never_show_key_material() -> None:
    short = base64.b64encode(b"s3cr3t-material-16b").decode()
    with pytest.raises(KeyRingError) as info:
        KeyRing.parse(json.dumps({"1": b64key(), "2": short}))
    assert short not in str(info.value)
    key = b64key()
    ring = KeyRing.parse(key)
    assert key not in repr(ring) and "versions=[1]" in repr(ring)


def test_duplicate_keys_across_versions_are_rejected() -> None:
    key = b64key()
    with pytest.raises(KeyRingError, match="same key"):
        KeyRing.parse(json.dumps({"1": key, "2": key}))


def test_seal_and_open_round_trip(ring: KeyRing) -> None:
    sealed = crypto.seal(ring, b"the secret", RID, "acct")
    assert sealed.key_version == 2
    assert b"the secret" not in sealed.ciphertext
    assert crypto.open_sealed(ring, sealed, RID, "acct") == b"the secret"
    assert "the secret" not in repr(sealed)


def test_each_seal_uses_a_fresh_data_key_and_nonce(ring: KeyRing) -> None:
    a = crypto.seal(ring, b"same", RID, "acct")
    b = crypto.seal(ring, b"same", RID, "acct")
    assert a.ciphertext != b.ciphertext and a.wrapped_key != b.wrapped_key


@pytest.mark.parametrize(("rid", "account"), [(uuid.uuid4(), "acct"), (RID, "other")])
def test_ciphertext_is_bound_to_its_record(ring: KeyRing, rid: uuid.UUID, account: str) -> None:
    sealed = crypto.seal(ring, b"payload", RID, "acct")
    with pytest.raises(IntegrityError):
        crypto.open_sealed(ring, sealed, rid, account)


@pytest.mark.parametrize("part", ["ciphertext", "wrapped_key"])
def test_any_flipped_bit_fails_authentication(ring: KeyRing, part: str) -> None:
    sealed = crypto.seal(ring, b"payload", RID, "acct")
    blob = bytearray(getattr(sealed, part))
    blob[len(blob) // 2] ^= 0x01
    tampered = Sealed(sealed.key_version, **{**{"wrapped_key": sealed.wrapped_key, "ciphertext": sealed.ciphertext},
                                             part: bytes(blob)})
    with pytest.raises(IntegrityError):
        crypto.open_sealed(ring, tampered, RID, "acct")


def test_truncated_ciphertext_fails(ring: KeyRing) -> None:
    sealed = crypto.seal(ring, b"payload", RID, "acct")
    with pytest.raises(IntegrityError):
        crypto.open_sealed(ring, Sealed(sealed.key_version, sealed.wrapped_key, sealed.ciphertext[:10]), RID, "acct")


def test_relabelled_key_version_fails(ring: KeyRing) -> None:
    sealed = crypto.seal(ring, b"payload", RID, "acct")
    with pytest.raises(IntegrityError):
        crypto.open_sealed(ring, Sealed(1, sealed.wrapped_key, sealed.ciphertext), RID, "acct")
    with pytest.raises(UnknownKeyVersion):
        crypto.open_sealed(ring, Sealed(7, sealed.wrapped_key, sealed.ciphertext), RID, "acct")


def test_wrong_master_key_fails(ring: KeyRing) -> None:
    sealed = crypto.seal(ring, b"payload", RID, "acct")
    other = KeyRing.parse(json.dumps({"2": b64key()}))
    with pytest.raises(IntegrityError):
        crypto.open_sealed(other, sealed, RID, "acct")


def test_rewrap_moves_to_current_version_keeping_the_payload_ciphertext() -> None:
    k1, k2 = b64key(), b64key()
    old = KeyRing.parse(json.dumps({"1": k1}))
    sealed = crypto.seal(old, b"payload", RID, "acct")
    new = KeyRing.parse(json.dumps({"1": k1, "2": k2}))
    moved = crypto.rewrap(new, sealed, RID, "acct")
    assert moved.key_version == 2
    assert moved.ciphertext == sealed.ciphertext and moved.wrapped_key != sealed.wrapped_key
    assert crypto.open_sealed(KeyRing.parse(json.dumps({"2": k2})), moved, RID, "acct") == b"payload"


def test_rewrap_with_new_data_key_reencrypts_the_payload(ring: KeyRing) -> None:
    sealed = crypto.seal(ring, b"payload", RID, "acct")
    moved = crypto.rewrap(ring, sealed, RID, "acct", new_data_key=True)
    assert moved.ciphertext != sealed.ciphertext
    assert crypto.open_sealed(ring, moved, RID, "acct") == b"payload"


def test_rewrap_refuses_a_tampered_payload(ring: KeyRing) -> None:
    sealed = crypto.seal(ring, b"payload", RID, "acct")
    broken = Sealed(sealed.key_version, sealed.wrapped_key, sealed.ciphertext[:-1] + bytes([sealed.ciphertext[-1] ^ 1]))
    with pytest.raises(IntegrityError):
        crypto.rewrap(ring, broken, RID, "acct")
