"""auth-service app factory."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from sandbox.services.auth import routes_keys, routes_sessions, routes_tokens, routes_users, users
from sandbox.services.auth.keys import ensure_signing_key
from sandbox.services.auth.migrations import MIGRATIONS
from sandbox.services.auth.sessions import Lockout, SessionStore
from sandbox.services.auth.settings import AuthSettings, kit_settings
from sandbox.services.auth.tokens import AuthState
from sandbox.services.kit import KitSettings, TokenVerifier, create_service_app

log = logging.getLogger("sandbox.services.auth")


def create_app(settings: AuthSettings | None = None, kit: KitSettings | None = None) -> FastAPI:
    """The auth-service app; settings come from the environment when not given."""
    settings = settings or AuthSettings()  # type: ignore[call-arg]
    kit = kit or kit_settings()

    async def start_auth(app: FastAPI) -> None:
        passphrase = settings.signing_key_passphrase.get_secret_value() if settings.signing_key_passphrase else None
        key, jwks = await ensure_signing_key(app.state.db, passphrase)
        if await users.ensure_bootstrap_admin(app.state.db, settings.bootstrap_admin_password.get_secret_value()):
            log.info("bootstrap admin 'admin' created")
        # Auth verifies its own tokens locally: the same verifier, seeded with its JWKS.
        app.state.verifier = TokenVerifier(keys=jwks, cache_size=kit.token_cache_size)
        app.state.auth = AuthState(
            settings=settings, key=key, jwks=jwks,
            sessions=SessionStore(app.state.sessions),
            lockout=Lockout(
                app.state.redis, threshold=settings.lockout_threshold,
                window_s=settings.lockout_window_s, duration_s=settings.lockout_duration_s,
            ),
        )
        log.info("auth ready", extra={"kid": key.kid, "service_accounts": sorted(settings.service_accounts)})

    return create_service_app(
        kit=kit,
        title="auth-service",
        description="Users and roles, Ed25519 access tokens, refresh tokens, sessions in Redis, JWKS.",
        routers=[routes_sessions.router, routes_tokens.router, routes_users.router, routes_keys.router],
        hot_routes=[routes_tokens.HOT],
        database_url=settings.database_url,
        migrations=MIGRATIONS,
        redis_url=settings.redis_url,
        on_startup=[start_auth],
        settings=settings,
    )
