"""universe-service settings: the spec's env names (UNIVERSE_*, KRAKEN_CREDENTIALS_DIR).

Built once in :func:`sandbox.services.universe.app.create_app` and passed down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class UniverseSettings(BaseSettings):
    """What universe-service reads besides the kit's ``AETHER_*`` settings."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: str = Field(
        validation_alias=AliasChoices("UNIVERSE_DATABASE_URL", "database_url"),
        min_length=1,
        description="PostgreSQL DSN of the universe database (no default).",
    )
    venue_url: str = Field(
        validation_alias=AliasChoices("UNIVERSE_VENUE_URL", "venue_url"),
        description="Base URL of the venue's REST API; AssetPairs is GET {venue_url}/0/public/AssetPairs.",
    )
    kraken_credentials_dir: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("KRAKEN_CREDENTIALS_DIR", "kraken_credentials_dir"),
        description="Mounted Kraken API credentials; AssetPairs is public, so the sync does not need them.",
    )
    sync_on_startup: bool = Field(
        default=True,
        validation_alias=AliasChoices("UNIVERSE_SYNC_ON_STARTUP", "sync_on_startup"),
        description="Sync from the venue when the service starts (retried in the background if the venue is down).",
    )
    sync_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        validation_alias=AliasChoices("UNIVERSE_SYNC_TIMEOUT_S", "sync_timeout_s"),
        description="Timeout of one AssetPairs request to the venue.",
    )
    sync_retry_max_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices("UNIVERSE_SYNC_RETRY_MAX_S", "sync_retry_max_s"),
        description="Longest pause between background retries after a failed start-up sync.",
    )
    cache_poll_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        validation_alias=AliasChoices("UNIVERSE_CACHE_POLL_S", "cache_poll_s"),
        description="How often the cache checks the database revision (a fallback to LISTEN/NOTIFY).",
    )

    @field_validator("venue_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("UNIVERSE_VENUE_URL must be an http:// or https:// URL")
        return value

    @property
    def assetpairs_url(self) -> str:
        """The full AssetPairs URL."""
        return f"{self.venue_url}/0/public/AssetPairs"
