"""auth-service settings, read with the platform spec's exact env names."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.services.kit.settings import KitSettings

CLIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
SCOPE = re.compile(r"^[A-Za-z0-9._:/*-]{1,64}$")


class ServiceAccount(BaseModel):
    """One service account: its secret and, optionally, the scopes it may be granted."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    secret: SecretStr
    scopes: tuple[str, ...] | None = None  # None: any requested scope is granted


class AuthSettings(BaseSettings):
    """Settings of auth-service (names from platform.yaml plus documented tunables)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str = Field(validation_alias="AUTH_DATABASE_URL", min_length=1)
    redis_url: str = Field(validation_alias="AUTH_REDIS_URL", min_length=1)
    bootstrap_admin_password: SecretStr = Field(validation_alias="AUTH_BOOTSTRAP_ADMIN_PASSWORD")
    service_accounts: dict[str, ServiceAccount] = Field(
        default_factory=dict, validation_alias="AUTH_SERVICE_ACCOUNTS",
        description='JSON {"client_id": "secret"} or {"client_id": {"secret": "...", "scopes": [...]}}',
    )
    signing_key_passphrase: SecretStr | None = Field(
        default=None, validation_alias="AUTH_SIGNING_KEY_PASSPHRASE",
        description="Encrypts the Ed25519 private keys stored in the database (recommended).",
    )
    access_ttl_s: int = Field(default=900, ge=30, le=86_400, validation_alias="AUTH_ACCESS_TOKEN_TTL_S")
    refresh_ttl_s: int = Field(default=43_200, ge=60, le=30 * 86_400, validation_alias="AUTH_REFRESH_TOKEN_TTL_S")
    service_token_ttl_s: int = Field(default=900, ge=30, le=86_400, validation_alias="AUTH_SERVICE_TOKEN_TTL_S")
    lockout_threshold: int = Field(default=5, ge=1, le=1000, validation_alias="AUTH_LOCKOUT_THRESHOLD")
    lockout_window_s: int = Field(default=900, ge=1, validation_alias="AUTH_LOCKOUT_WINDOW_S")
    lockout_duration_s: int = Field(default=900, ge=1, validation_alias="AUTH_LOCKOUT_DURATION_S")

    @field_validator("bootstrap_admin_password")
    @classmethod
    def _strong_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("must be at least 8 characters (the runtime generates one per sandbox)")
        return value

    @field_validator("service_accounts", mode="before")
    @classmethod
    def _plain_secrets(cls, value: object) -> object:
        if isinstance(value, dict):
            return {k: ({"secret": v} if isinstance(v, str) else v) for k, v in value.items()}
        return value

    @field_validator("service_accounts")
    @classmethod
    def _valid_ids(cls, value: dict[str, ServiceAccount]) -> dict[str, ServiceAccount]:
        for client_id, account in value.items():
            if not CLIENT_ID.match(client_id):
                raise ValueError(f"invalid client id {client_id!r}")
            if len(account.secret.get_secret_value()) < 8:
                raise ValueError(f"secret of {client_id!r} is shorter than 8 characters")
            for scope in account.scopes or ():
                if not SCOPE.match(scope):
                    raise ValueError(f"invalid scope {scope!r} for {client_id!r}")
        return value


def kit_settings() -> KitSettings:
    """Kit settings for auth: the service name and session Redis default to auth's own when unset."""
    fallbacks: dict[str, str] = {}
    if not os.environ.get("AETHER_SERVICE_NAME"):
        fallbacks["service_name"] = "auth-service"
    if not os.environ.get("AETHER_SESSION_REDIS_URL") and os.environ.get("AUTH_REDIS_URL"):
        fallbacks["session_redis_url"] = os.environ["AUTH_REDIS_URL"]
    return KitSettings(**fallbacks)
