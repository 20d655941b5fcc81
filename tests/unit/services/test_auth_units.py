"""auth-service pure logic: models, settings, key storage, refresh-token format."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from sandbox.services.auth.keys import KeyUnavailable, load_private, public_jwk, serialize_private
from sandbox.services.auth.models import LoginRequest, ServiceTokenRequest, UserCreate, UserUpdate
from sandbox.services.auth.sessions import hash_secret, split_refresh_token
from sandbox.services.auth.settings import AuthSettings
from sandbox.services.auth.tokens import access_claims

BASE_ENV = {
    "AUTH_DATABASE_URL": "postgresql://u:p@127.0.0.1:1/auth",
    "AUTH_REDIS_URL": "redis://127.0.0.1:1/0",
    "AUTH_BOOTSTRAP_ADMIN_PASSWORD": "a-long-generated-password",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in ("AUTH_SERVICE_ACCOUNTS", "AUTH_SIGNING_KEY_PASSPHRASE", *BASE_ENV):
        monkeypatch.delenv(key, raising=False)
    for key, value in BASE_ENV.items():
        monkeypatch.setenv(key, value)
    return monkeypatch


def test_settings_read_the_spec_names(env: pytest.MonkeyPatch) -> None:
    s = AuthSettings()  # type: ignore[call-arg]
    assert s.database_url.endswith("/auth") and s.redis_url.startswith("redis://")
    assert s.bootstrap_admin_password.get_secret_value() == "a-long-generated-password"
    assert s.service_accounts == {} and s.access_ttl_s == 900 and s.lockout_threshold == 5


def test_bootstrap_password_is_required_and_never_defaulted(env: pytest.MonkeyPatch) -> None:
    env.delenv("AUTH_BOOTSTRAP_ADMIN_PASSWORD")
    with pytest.raises(ValidationError, match="AUTH_BOOTSTRAP_ADMIN_PASSWORD"):
        AuthSettings()  # type: ignore[call-arg]
    env.setenv("AUTH_BOOTSTRAP_ADMIN_PASSWORD", "short")
    with pytest.raises(ValidationError, match="at least 8"):
        AuthSettings()  # type: ignore[call-arg]


def test_service_accounts_accept_plain_secrets_and_scoped_objects(env: pytest.MonkeyPatch) -> None:
    env.setenv(
        "AUTH_SERVICE_ACCOUNTS",
        json.dumps({"fees-service": "secret-1234", "oms": {"secret": "secret-5678", "scopes": ["orders:write"]}}),
    )
    accounts = AuthSettings().service_accounts  # type: ignore[call-arg]
    assert accounts["fees-service"].secret.get_secret_value() == "secret-1234"
    assert accounts["fees-service"].scopes is None
    assert accounts["oms"].scopes == ("orders:write",)


@pytest.mark.parametrize(
    "accounts", ['{"bad id!": "secret-1234"}', '{"svc": "short"}', '{"svc": {"secret": "secret-1234", "scopes": ["a b"]}}', "[1]", "not json"]
)
def test_bad_service_accounts_are_refused(env: pytest.MonkeyPatch, accounts: str) -> None:
    env.setenv("AUTH_SERVICE_ACCOUNTS", accounts)
    with pytest.raises((ValidationError, ValueError)):
        AuthSettings()  # type: ignore[call-arg]


def test_user_create_validates_and_dedupes_roles() -> None:
    u = UserCreate(username="alice.b", password="correct horse", roles=["trader", "trader", "viewer"])
    assert u.roles == ["trader", "viewer"]
    for bad in (
        {"username": "Alice", "password": "correct horse", "roles": ["trader"]},
        {"username": "al", "password": "correct horse", "roles": ["trader"]},
        {"username": "alice", "password": "short", "roles": ["trader"]},
        {"username": "alice", "password": "nul\x00inside!", "roles": ["trader"]},
        {"username": "alice", "password": "correct horse", "roles": []},
        {"username": "alice", "password": "correct horse", "roles": ["root"]},
        {"username": "alice", "password": "correct horse", "roles": ["trader"], "is_admin": True},
    ):
        with pytest.raises(ValidationError):
            UserCreate(**bad)


def test_update_and_request_models_forbid_unknown_fields() -> None:
    assert UserUpdate().model_dump(exclude_unset=True) == {}
    with pytest.raises(ValidationError):
        UserUpdate(roles=["trader"], username="bob")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        LoginRequest(username="", password="x")
    with pytest.raises(ValidationError):
        ServiceTokenRequest(client_id="a", client_secret="b", scope=["has space"])


@pytest.mark.parametrize("passphrase", [None, "pass phrase"])
def test_private_keys_round_trip_through_storage(passphrase: str | None) -> None:
    key = Ed25519PrivateKey.generate()
    pem = serialize_private(key, passphrase)
    assert (b"ENCRYPTED" in pem) == bool(passphrase)
    loaded = load_private(pem, bool(passphrase), passphrase)
    assert public_jwk(loaded) == public_jwk(key)


def test_encrypted_key_needs_the_right_passphrase() -> None:
    pem = serialize_private(Ed25519PrivateKey.generate(), "right")
    with pytest.raises(KeyUnavailable, match="set AUTH_SIGNING_KEY_PASSPHRASE"):
        load_private(pem, True, None)
    with pytest.raises(KeyUnavailable, match="wrong"):
        load_private(pem, True, "wrong")


def test_public_jwk_has_no_private_part_and_a_thumbprint_kid() -> None:
    key = Ed25519PrivateKey.generate()
    jwk = public_jwk(key)
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA"
    assert public_jwk(key)["kid"] == jwk["kid"] != public_jwk(Ed25519PrivateKey.generate())["kid"]


@pytest.mark.parametrize(
    ("token", "expected"),
    [("abc123.secret", ("abc123", "secret")), ("abc.def.ghi", ("abc", "def.ghi")),
     ("nodot", None), (".secret", None), ("abc.", None), ("a-b.secret", None), ("a" * 65 + ".s", None)],
)
def test_refresh_token_format(token: str, expected: tuple[str, str] | None) -> None:
    assert split_refresh_token(token) == expected


def test_refresh_secrets_are_stored_hashed() -> None:
    assert hash_secret("x") != "x" and len(hash_secret("x")) == 64


def test_access_claims_follow_the_contract() -> None:
    c = access_claims(subject="alice", roles=["trader"], sid="s", kind="user", scopes=[], ttl_s=900, now=1000)
    assert c["iss"] == "aether-auth" and c["aud"] == "aether" and c["typ"] == "access"
    assert c["exp"] - c["iat"] == 900 and c["sid"] == "s" and c["kind"] == "user"
