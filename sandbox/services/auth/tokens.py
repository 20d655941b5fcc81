"""Issuing access tokens (JWT, EdDSA) and the auth service's runtime state."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

import jwt
from fastapi import Request

from sandbox.services.auth.keys import SigningKey
from sandbox.services.auth.sessions import Lockout, SessionStore
from sandbox.services.auth.settings import AuthSettings
from sandbox.services.kit.auth import ALGORITHM, AUDIENCE, ISSUER


def access_claims(
    *, subject: str, roles: list[str], sid: str, kind: str, scopes: list[str], ttl_s: int, now: int | None = None
) -> dict[str, Any]:
    """The claims of an access token (the kit contract's shape)."""
    iat = int(time.time()) if now is None else now
    return {
        "iss": ISSUER, "aud": AUDIENCE, "sub": subject, "roles": roles, "sid": sid, "kind": kind,
        "scope": scopes, "iat": iat, "nbf": iat, "exp": iat + ttl_s, "typ": "access", "jti": secrets.token_hex(8),
    }


def sign(claims: dict[str, Any], key: SigningKey) -> str:
    """A compact JWS with ``kid`` in the header."""
    return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid})


@dataclass
class AuthState:
    """Everything the routes need, built at start-up (``app.state.auth``)."""

    settings: AuthSettings
    key: SigningKey
    jwks: dict[str, Any]
    sessions: SessionStore
    lockout: Lockout

    def issue(self, *, subject: str, roles: list[str], sid: str, kind: str, scopes: list[str], ttl_s: int) -> str:
        """Sign a fresh access token."""
        return sign(access_claims(subject=subject, roles=roles, sid=sid, kind=kind, scopes=scopes, ttl_s=ttl_s), self.key)


async def auth_state(request: Request) -> AuthState:
    """Dependency: the auth runtime state."""
    return request.app.state.auth
