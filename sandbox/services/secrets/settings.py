"""Settings of secrets-service (exact env names from the platform spec; secrets have no defaults)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.services.secrets.crypto import KeyRing


class SecretsSettings(BaseSettings):
    """secrets-service's own settings; the common ones are :class:`~sandbox.services.kit.settings.KitSettings`."""

    # hide_input_in_errors: a malformed SECRETS_ENCRYPTION_KEY must not be printed back.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    database_url: str = Field(validation_alias="SECRETS_DATABASE_URL", description="PostgreSQL DSN of the secrets database.")
    encryption_key: SecretStr = Field(
        validation_alias="SECRETS_ENCRYPTION_KEY",
        description='Master key ring: one base64 32-byte key (version 1) or JSON {"1": "<b64>", "2": "<b64>"};'
        " the highest version seals new data.",
    )
    kraken_credentials_dir: Path | None = Field(
        default=None, validation_alias="KRAKEN_CREDENTIALS_DIR",
        description="Directory of *.json key pairs imported (idempotently) at start-up; absent or empty is fine.",
    )

    @field_validator("encryption_key")
    @classmethod
    def _parse_ring(cls, value: SecretStr) -> SecretStr:
        KeyRing.parse(value.get_secret_value())  # KeyRingError is a ValueError without key material
        return value

    def key_ring(self) -> KeyRing:
        """The parsed master-key ring."""
        return KeyRing.parse(self.encryption_key.get_secret_value())
