"""Settings of capital-allocator (exact env names from the platform spec; the DSN has no default).

Built once in :func:`sandbox.services.capital_allocator.app.create_app` and
passed down. An inconsistent SSL combination fails here, so ``run`` reports it
as one line naming the variable and the process exits with code 2.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.services.capital_allocator.dbssl import SslOption, SslSettings, build_ssl


class CapitalAllocatorSettings(BaseSettings):
    """What capital-allocator reads besides the kit's ``AETHER_*`` settings."""

    # hide_input_in_errors: the DSN carries a password and must never be echoed back.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    database_url: str = Field(
        validation_alias="CAPITAL_ALLOCATOR_DB_URL", min_length=1,
        description="PostgreSQL DSN of the capital_allocator database.",
    )
    db_sslmode: str | None = Field(
        default=None, validation_alias="CAPITAL_ALLOCATOR_DB_SSLMODE",
        description="disable, allow, prefer, require, verify-ca or verify-full (absent: the DSN's, else prefer).",
    )
    db_sslrootcert: str | None = Field(
        default=None, validation_alias="CAPITAL_ALLOCATOR_DB_SSLROOTCERT",
        description="CA certificate file (PEM) that signed the server's certificate, or 'system'.",
    )
    db_sslcert: str | None = Field(
        default=None, validation_alias="CAPITAL_ALLOCATOR_DB_SSLCERT",
        description="Client certificate file (PEM).",
    )
    db_sslkey: str | None = Field(
        default=None, validation_alias="CAPITAL_ALLOCATOR_DB_SSLKEY",
        description="Client private key file (PEM, unencrypted).",
    )
    cache_poll_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="CAPITAL_ALLOCATOR_CACHE_POLL_S",
        description="How often a replica compares its cache with the database (fallback to LISTEN/NOTIFY).",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("CAPITAL_ALLOCATOR_DB_URL must be a postgresql:// URL")
        return value

    @field_validator("db_sslmode", "db_sslrootcert", "db_sslcert", "db_sslkey", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An ExternalSecret may render absent keys as empty strings.
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @model_validator(mode="after")
    def _ssl_consistent(self) -> CapitalAllocatorSettings:
        """Build the TLS option once to reject bad combinations and unusable files at start-up."""
        self.db_ssl()
        return self

    def ssl_settings(self) -> SslSettings:
        """The optional SSL settings."""
        return SslSettings(self.db_sslmode, self.db_sslrootcert, self.db_sslcert, self.db_sslkey)

    def db_ssl(self) -> SslOption:
        """asyncpg's ``ssl`` argument for the database (``SslConfigError``, a ValueError, when inconsistent)."""
        return build_ssl(self.ssl_settings(), self.database_url)
