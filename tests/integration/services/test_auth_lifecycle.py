"""auth-service start-up and persistence: required settings, restart on the same database, replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def _login(url: str, username: str, password: str) -> httpx.Response:
    return httpx.post(f"{url}/v1/login", json={"username": username, "password": password}, timeout=10)


def test_missing_bootstrap_password_stops_start_up_with_a_clear_message(
    auth_env_factory: Callable[..., dict[str, str]],
) -> None:
    env = auth_env_factory("auth_nobootstrap")
    del env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AETHER_", "AUTH_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "sandbox.services.auth"], env={**base, **env},
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "AUTH_BOOTSTRAP_ADMIN_PASSWORD" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_key_passphrase_fails_start_up(
    start_service: Callable[..., Any], auth_env_factory: Callable[..., dict[str, str]]
) -> None:
    env = auth_env_factory("auth_passphrase", redis_db=6)
    start_service("auth", env).stop()
    with pytest.raises(Exception, match="AUTH_SIGNING_KEY_PASSPHRASE"):
        start_service("auth", {**env, "AUTH_SIGNING_KEY_PASSPHRASE": "not-the-right-one"})


def test_data_keys_and_sessions_survive_a_restart(
    start_service: Callable[..., Any], auth_env_factory: Callable[..., dict[str, str]]
) -> None:
    env = auth_env_factory("auth_restart", redis_db=7)
    first = start_service("auth", env)
    admin = _login(first.url, "admin", env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]).json()["access_token"]
    created = httpx.post(
        f"{first.url}/v1/users", json={"username": "survivor", "password": "persisted password", "roles": ["trader"]},
        headers={"Authorization": f"Bearer {admin}"}, timeout=10,
    )
    assert created.status_code == 201
    user_pair = _login(first.url, "survivor", "persisted password").json()
    jwks = httpx.get(f"{first.url}/.well-known/jwks.json").json()
    # graceful SIGTERM: uvicorn runs the lifespan shutdown, then re-raises the signal (-15)
    assert first.stop() in (0, -15)
    assert any('"service stopping"' in line for line in first.log_tail())

    # restart with a *different* bootstrap password: the existing admin is left alone
    second = start_service("auth", {**env, "AETHER_PORT": str(_free()), "AUTH_BOOTSTRAP_ADMIN_PASSWORD": "another-password-123"})
    assert httpx.get(f"{second.url}/.well-known/jwks.json").json() == jwks  # same signing key
    assert _login(second.url, "survivor", "persisted password").status_code == 200
    assert _login(second.url, "admin", env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]).status_code == 200
    assert _login(second.url, "admin", "another-password-123").status_code == 401
    # tokens issued before the restart still work (key in the DB, session in Redis)
    me = httpx.get(f"{second.url}/v1/me", headers={"Authorization": f"Bearer {user_pair['access_token']}"})
    assert me.status_code == 200 and me.json()["subject"] == "survivor"
    assert httpx.post(f"{second.url}/v1/refresh", json={"refresh_token": user_pair["refresh_token"]}).status_code == 200


def test_replicas_share_keys_and_sessions(
    start_service: Callable[..., Any], auth_env_factory: Callable[..., dict[str, str]]
) -> None:
    env = auth_env_factory("auth_replicas", redis_db=8)
    a = start_service("auth", env)
    b = start_service("auth", {**env, "AETHER_PORT": str(_free())})
    assert httpx.get(f"{a.url}/.well-known/jwks.json").json() == httpx.get(f"{b.url}/.well-known/jwks.json").json()
    pair = _login(a.url, "admin", env["AUTH_BOOTSTRAP_ADMIN_PASSWORD"]).json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}
    assert httpx.get(f"{b.url}/v1/me", headers=headers).status_code == 200
    assert httpx.post(f"{b.url}/v1/logout", headers=headers).status_code == 204
    assert httpx.get(f"{a.url}/v1/me", headers=headers).status_code == 401


def _free() -> int:
    from sandbox.infra.ports import free_port

    return free_port()
