"""auth-service over HTTP: login/refresh/logout/introspect, roles, tokens, users, cross-service revocation."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import APIRouter
from fastapi.testclient import TestClient

from sandbox.services.auth.keys import load_private
from sandbox.services.kit import CurrentPrincipal, KitSettings, create_service_app, require_roles

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(auth_service: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=auth_service.url, timeout=10) as client:
        yield client


@pytest.fixture
def probe(auth_service: Any) -> Iterator[TestClient]:
    """A second, kit-based service (in-process) with protected endpoints, verifying via auth's JWKS."""
    router = APIRouter()

    @router.get("/v1/whoami")
    async def whoami(p: CurrentPrincipal) -> dict:
        return {"sub": p.subject, "roles": list(p.roles), "kind": p.kind, "scope": list(p.scopes)}

    @router.get("/v1/trade", dependencies=[require_roles("trader")])
    async def trade() -> dict:
        return {"ok": True}

    kit = KitSettings(
        service_name="kit-probe", auth_url=auth_service.url,
        session_redis_url=auth_service.env["AETHER_SESSION_REDIS_URL"],
    )
    with TestClient(create_service_app(kit=kit, title="kit-probe", routers=[router])) as client:
        yield client


def login(api: httpx.Client, username: str, password: str) -> httpx.Response:
    return api.post("/v1/login", json={"username": username, "password": password})


def real_signing_key(postgres: Any, auth_service: Any) -> tuple[str, Ed25519PrivateKey]:
    """The live private key, read from the auth database (the test knows the passphrase)."""
    with psycopg.connect(postgres.dsn(auth_service.database)) as conn:
        kid, pem, encrypted = conn.execute(
            "SELECT kid, private_key, encrypted FROM signing_keys WHERE retired_at IS NULL"
        ).fetchone()
    return kid, load_private(bytes(pem), encrypted, auth_service.signing_key_passphrase)


def claims_for(sub: str, sid: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iss": "aether-auth", "aud": "aether", "sub": sub, "roles": ["admin"], "sid": sid, "kind": "user",
            "scope": [], "iat": now, "exp": now + 600, "typ": "access", **over}


# ---- keys and bootstrap ----------------------------------------------------------------------


def test_jwks_publishes_only_public_ed25519_keys(api: httpx.Client) -> None:
    resp = api.get("/.well-known/jwks.json")
    assert resp.status_code == 200
    keys = resp.json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "OKP" and keys[0]["crv"] == "Ed25519" and keys[0]["alg"] == "EdDSA"
    assert "d" not in keys[0] and keys[0]["kid"]


def test_private_key_is_stored_encrypted(postgres: Any, auth_service: Any) -> None:
    with psycopg.connect(postgres.dsn(auth_service.database)) as conn:
        pem, encrypted = conn.execute("SELECT private_key, encrypted FROM signing_keys").fetchone()
    assert encrypted and b"ENCRYPTED PRIVATE KEY" in bytes(pem)


def test_bootstrap_admin_logs_in_with_the_configured_password(api: httpx.Client, auth_service: Any) -> None:
    resp = login(api, "admin", auth_service.admin_password)
    assert resp.status_code == 200
    token = resp.json()["access_token"]
    header = jwt.get_unverified_header(token)
    claims = jwt.decode(token, options={"verify_signature": False})
    assert header["alg"] == "EdDSA" and header["kid"] == api.get("/.well-known/jwks.json").json()["keys"][0]["kid"]
    assert claims["sub"] == "admin" and claims["roles"] == ["admin"] and claims["kind"] == "user"
    assert claims["iss"] == "aether-auth" and claims["aud"] == "aether" and claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == resp.json()["expires_in"] == 900
    me = api.get("/v1/users/admin", headers=bearer(token)).json()
    assert me["roles"] == ["admin"] and not me["disabled"] and "password_hash" not in me


def test_admin_password_is_stored_as_argon2(postgres: Any, auth_service: Any) -> None:
    with psycopg.connect(postgres.dsn(auth_service.database)) as conn:
        (stored,) = conn.execute("SELECT password_hash FROM users WHERE username = 'admin'").fetchone()
    assert stored.startswith("$argon2id$") and auth_service.admin_password not in stored


# ---- sessions ---------------------------------------------------------------------------------


def test_login_refresh_logout_introspect(api: httpx.Client, make_user: Callable[..., Any], service_token: Callable[..., str]) -> None:
    username, password, _ = make_user("trader")
    pair = login(api, username, password).json()
    assert set(pair) >= {"access_token", "refresh_token", "expires_in", "refresh_expires_in", "token_type"}
    svc = bearer(service_token())

    info = api.post("/v1/introspect", json={"token": pair["access_token"]}, headers=svc).json()
    assert info["active"] is True and info["sub"] == username and info["roles"] == ["trader"]

    refreshed = api.post("/v1/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200
    new = refreshed.json()
    assert new["refresh_token"] != pair["refresh_token"] and new["access_token"] != pair["access_token"]
    new_claims = jwt.decode(new["access_token"], options={"verify_signature": False})
    assert new_claims["sid"] == info["sid"]  # same session

    # the rotated-out refresh token is dead; replaying it revokes the whole session (theft detection)
    replay = api.post("/v1/refresh", json={"refresh_token": pair["refresh_token"]})
    assert replay.status_code == 401 and replay.json()["error"] == "invalid_refresh_token"
    assert api.post("/v1/introspect", json={"token": new["access_token"]}, headers=svc).json() == {"active": False}
    assert api.post("/v1/refresh", json={"refresh_token": new["refresh_token"]}).status_code == 401

    # a fresh session, then logout
    pair = login(api, username, password).json()
    assert api.get("/v1/me", headers=bearer(pair["access_token"])).json()["subject"] == username
    assert api.post("/v1/logout", headers=bearer(pair["access_token"])).status_code == 204
    assert api.get("/v1/me", headers=bearer(pair["access_token"])).status_code == 401
    assert api.post("/v1/introspect", json={"token": pair["access_token"]}, headers=svc).json() == {"active": False}
    assert api.post("/v1/refresh", json={"refresh_token": pair["refresh_token"]}).status_code == 401
    assert api.post("/v1/logout", headers=bearer(pair["access_token"])).status_code == 401


def test_wrong_credentials_are_401_without_saying_which(api: httpx.Client, make_user: Callable[..., Any]) -> None:
    username, _, _ = make_user("viewer")
    wrong_pw = login(api, username, "not-the-password")
    no_user = login(api, "nobody-here", "whatever-password")
    assert wrong_pw.status_code == no_user.status_code == 401
    assert wrong_pw.json() == no_user.json()


def test_logout_is_seen_by_another_service_at_once(
    api: httpx.Client, probe: TestClient, make_user: Callable[..., Any]
) -> None:
    username, _, token = make_user("trader")
    assert probe.get("/v1/whoami", headers=bearer(token)).json()["sub"] == username
    assert probe.get("/v1/trade", headers=bearer(token)).status_code == 200  # also warms the verified-token cache
    assert api.post("/v1/logout", headers=bearer(token)).status_code == 204
    resp = probe.get("/v1/whoami", headers=bearer(token))
    assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"


def test_roles_are_enforced_in_another_service(probe: TestClient, make_user: Callable[..., Any], admin_token: str) -> None:
    _, _, viewer = make_user("viewer")
    _, _, risk = make_user(["risk-officer", "viewer"])
    assert probe.get("/v1/whoami", headers=bearer(viewer)).status_code == 200
    assert probe.get("/v1/trade", headers=bearer(viewer)).status_code == 403
    assert probe.get("/v1/trade", headers=bearer(risk)).status_code == 403
    assert probe.get("/v1/trade", headers=bearer(admin_token)).status_code == 200


def test_forged_and_expired_tokens_are_401_everywhere(
    api: httpx.Client, probe: TestClient, postgres: Any, auth_service: Any, make_user: Callable[..., Any]
) -> None:
    username, _, token = make_user("trader")
    sid = jwt.decode(token, options={"verify_signature": False})["sid"]  # a live session
    kid, real_key = real_signing_key(postgres, auth_service)
    cases = {
        "other key, real kid": jwt.encode(claims_for(username, sid), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": kid}),
        "expired, real key": jwt.encode(claims_for(username, sid, exp=int(time.time()) - 120, iat=int(time.time()) - 1000), real_key, algorithm="EdDSA", headers={"kid": kid}),
        "wrong audience": jwt.encode(claims_for(username, sid, aud="other"), real_key, algorithm="EdDSA", headers={"kid": kid}),
        "unknown kid": jwt.encode(claims_for(username, sid), Ed25519PrivateKey.generate(), algorithm="EdDSA", headers={"kid": "nope"}),
        "tampered payload": token.split(".")[0] + "." + jwt.utils.base64url_encode(b'{"sub":"admin","roles":["admin"]}').decode() + "." + token.split(".")[2],
        "garbage": "a.b.c",
    }
    # sanity: the real key with good claims *is* accepted (so the rejections above are meaningful)
    good = jwt.encode(claims_for(username, sid, roles=["trader"]), real_key, algorithm="EdDSA", headers={"kid": kid})
    assert probe.get("/v1/whoami", headers=bearer(good)).status_code == 200
    for name, forged in cases.items():
        for client in (api, probe):
            path = "/v1/me" if client is api else "/v1/whoami"
            resp = client.get(path, headers=bearer(forged))
            assert resp.status_code == 401, (name, resp.text)
            assert resp.headers["www-authenticate"] == "Bearer"


def test_lockout_after_repeated_failures(api: httpx.Client, make_user: Callable[..., Any]) -> None:
    username, password, _ = make_user("viewer")
    statuses = [login(api, username, "wrong-password").status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 423]
    locked = login(api, username, password)  # even the right password
    assert locked.status_code == 423 and locked.json()["error"] == "account_locked"
    assert 0 < int(locked.headers["retry-after"]) <= 900


def test_lockout_expires(start_service: Callable[..., Any], auth_env_factory: Callable[..., dict[str, str]]) -> None:
    env = auth_env_factory("auth_lockout", redis_db=4, AUTH_LOCKOUT_THRESHOLD="2", AUTH_LOCKOUT_DURATION_S="2")
    svc = start_service("auth", env)
    password = env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]
    with httpx.Client(base_url=svc.url, timeout=10) as c:
        assert [login(c, "admin", "wrong-password").status_code for _ in range(2)] == [401, 423]
        assert login(c, "admin", password).status_code == 423
        deadline = time.monotonic() + 10
        while (resp := login(c, "admin", password)).status_code == 423 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert resp.status_code == 200


# ---- service accounts and introspection ------------------------------------------------------


def test_service_tokens(api: httpx.Client, probe: TestClient, auth_service: Any) -> None:
    secret = auth_service.service_accounts["test-client"]
    ok = api.post("/v1/service-tokens", json={"client_id": "test-client", "client_secret": secret, "scope": ["fees:read"]})
    assert ok.status_code == 200
    body = ok.json()
    assert body["scope"] == ["fees:read"] and body["expires_in"] > 0
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["kind"] == "service" and claims["roles"] == ["service"] and claims["sub"] == "test-client"
    who = probe.get("/v1/whoami", headers=bearer(body["access_token"])).json()
    assert who == {"sub": "test-client", "roles": ["service"], "kind": "service", "scope": ["fees:read"]}
    assert probe.get("/v1/trade", headers=bearer(body["access_token"])).status_code == 403
    for bad in ({"client_id": "test-client", "client_secret": "wrong"}, {"client_id": "nobody", "client_secret": secret}):
        resp = api.post("/v1/service-tokens", json=bad)
        assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"
    # a service token's session can be revoked like any other
    assert api.post("/v1/logout", headers=bearer(body["access_token"])).status_code == 204
    assert probe.get("/v1/whoami", headers=bearer(body["access_token"])).status_code == 401


def test_introspection_needs_a_service_or_admin_caller(api: httpx.Client, make_user: Callable[..., Any], admin_token: str) -> None:
    _, _, trader = make_user("trader")
    assert api.post("/v1/introspect", json={"token": trader}).status_code == 401
    assert api.post("/v1/introspect", json={"token": trader}, headers=bearer(trader)).status_code == 403
    resp = api.post("/v1/introspect", json={"token": trader}, headers=bearer(admin_token))
    assert resp.status_code == 200 and resp.json()["active"] is True
    assert api.post("/v1/introspect", json={"token": "garbage"}, headers=bearer(admin_token)).json() == {"active": False}


# ---- user management --------------------------------------------------------------------------


def test_user_management_needs_admin(api: httpx.Client, make_user: Callable[..., Any]) -> None:
    me, _, viewer = make_user("viewer")
    other, _, _ = make_user("trader")
    new = {"username": "mallory", "password": "long enough pw", "roles": ["admin"]}
    assert api.post("/v1/users", json=new, headers=bearer(viewer)).status_code == 403
    assert api.get("/v1/users", headers=bearer(viewer)).status_code == 403
    assert api.patch(f"/v1/users/{me}", json={"roles": ["admin"]}, headers=bearer(viewer)).status_code == 403
    assert api.get(f"/v1/users/{other}", headers=bearer(viewer)).status_code == 403
    assert api.get(f"/v1/users/{me}", headers=bearer(viewer)).status_code == 200
    assert api.get("/v1/users").status_code == 401


def test_create_list_get_update_users(api: httpx.Client, admin_token: str, make_user: Callable[..., Any]) -> None:
    admin = bearer(admin_token)
    username, password, token = make_user("viewer")
    dup = api.post("/v1/users", json={"username": username, "password": "another password", "roles": ["viewer"]}, headers=admin)
    assert dup.status_code == 409 and dup.json()["error"] == "user_exists"
    names = [u["username"] for u in api.get("/v1/users", params={"limit": 500}, headers=admin).json()["items"]]
    assert "admin" in names and username in names and names == sorted(names)
    assert api.get("/v1/users", params={"limit": 1, "offset": 1}, headers=admin).json()["items"][0]["username"] == names[1]
    assert api.get("/v1/users/nobody-here", headers=admin).status_code == 404

    # role change: old tokens die at once, a new login carries the new roles
    changed = api.patch(f"/v1/users/{username}", json={"roles": ["trader", "viewer"]}, headers=admin)
    assert changed.status_code == 200 and changed.json()["roles"] == ["trader", "viewer"]
    assert api.get("/v1/me", headers=bearer(token)).status_code == 401
    relogin = login(api, username, password).json()["access_token"]
    assert api.get("/v1/me", headers=bearer(relogin)).json()["roles"] == ["trader", "viewer"]

    # disable: tokens die, login refused; enable again
    assert api.patch(f"/v1/users/{username}", json={"disabled": True}, headers=admin).json()["disabled"] is True
    assert api.get("/v1/me", headers=bearer(relogin)).status_code == 401
    refused = login(api, username, password)
    assert refused.status_code == 403 and refused.json()["error"] == "account_disabled"
    assert api.patch(f"/v1/users/{username}", json={"disabled": False}, headers=admin).status_code == 200

    # password change
    assert api.patch(f"/v1/users/{username}", json={"password": "a brand new password"}, headers=admin).status_code == 200
    assert login(api, username, password).status_code == 401
    assert login(api, username, "a brand new password").status_code == 200


def test_admins_cannot_lock_themselves_out(api: httpx.Client, admin_token: str) -> None:
    for change in ({"disabled": True}, {"roles": ["viewer"]}):
        resp = api.patch("/v1/users/admin", json=change, headers=bearer(admin_token))
        assert resp.status_code == 409 and resp.json()["error"] == "cannot_lock_out_self"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/users", {"username": "UPPER", "password": "long enough pw", "roles": ["viewer"]}),
        ("POST", "/v1/users", {"username": "okname", "password": "long enough pw", "roles": ["god"]}),
        ("POST", "/v1/users", {"username": "okname", "password": "long enough pw", "roles": []}),
        ("POST", "/v1/users", {"username": "okname", "password": "x\u0000" * 8, "roles": ["viewer"]}),
        ("POST", "/v1/users", {"username": "okname", "password": "long enough pw", "roles": ["viewer"], "extra": 1}),
        ("POST", "/v1/users", ["not", "an", "object"]),
        ("PATCH", "/v1/users/admin", {"roles": "admin"}),
        ("PATCH", "/v1/users/BAD NAME", {"disabled": True}),
        ("GET", "/v1/users?limit=0", None),
        ("GET", "/v1/users?offset=-1", None),
        ("POST", "/v1/login", {"username": "admin"}),
        ("POST", "/v1/login", {"username": "a" * 500, "password": "x"}),
        ("POST", "/v1/login", {"username": "ad\u0000min", "password": "x"}),
        ("POST", "/v1/login", {"username": "\ud800", "password": "x"}),
        ("POST", "/v1/service-tokens", {"client_id": "\udfff", "client_secret": "y"}),
        ("POST", "/v1/refresh", {"refresh_token": "abc.\ud800"}),
        ("POST", "/v1/refresh", {"refresh_token": ""}),
        ("POST", "/v1/introspect", {}),
        ("POST", "/v1/service-tokens", {"client_id": "x", "client_secret": "y", "scope": "not-a-list"}),
    ],
)
def test_bad_input_is_4xx_with_the_uniform_body(
    api: httpx.Client, admin_token: str, method: str, path: str, body: Any
) -> None:
    resp = api.request(
        method, path, content=json.dumps(body).encode(),  # ASCII escapes: lone surrogates travel as "\\ud800"
        headers={**bearer(admin_token), "Content-Type": "application/json"},
    )
    assert 400 <= resp.status_code < 500, resp.text
    assert set(resp.json()) == {"error", "message", "detail"}
    assert api.get("/v1/users/okname", headers=bearer(admin_token)).status_code == 404  # nothing half-written


def test_refresh_with_malformed_tokens_is_401(api: httpx.Client) -> None:
    for token in ("x", "abc.def", "0" * 32 + ".nope", "é.é"):
        assert api.post("/v1/refresh", json={"refresh_token": token}).status_code == 401


def test_metrics_and_request_ids(api: httpx.Client) -> None:
    resp = api.get("/healthz", headers={"X-Request-ID": "trace-123"})
    assert resp.status_code == 200 and resp.headers["x-request-id"] == "trace-123"
    assert resp.json()["checks"]["database"] == "ok"
    text = api.get("/metrics").text
    assert 'route="/v1/login"' in text and 'service="auth-service"' in text
