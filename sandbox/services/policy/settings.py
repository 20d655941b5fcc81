"""policy-service settings: the spec's env names plus the upstream URLs and cache tuning.

The platform spec lists ``KRAKEN_CREDENTIALS_DIR`` only; the runtime must also
render ``POLICY_DATABASE_URL``, ``POLICY_UNIVERSE_URL`` and ``POLICY_SECRETS_URL``
(and may render ``POLICY_VENUE_URL``). Built once in
:func:`sandbox.services.policy.app.create_app` and passed down.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _alias(env: str, name: str) -> AliasChoices:
    return AliasChoices(env, name)


class PolicySettings(BaseSettings):
    """What policy-service reads besides the kit's ``AETHER_*`` settings."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    database_url: str = Field(
        validation_alias=_alias("POLICY_DATABASE_URL", "database_url"), min_length=1,
        description="PostgreSQL DSN of the policy database (account rules and their audit trail).",
    )
    universe_url: str = Field(
        validation_alias=_alias("POLICY_UNIVERSE_URL", "universe_url"),
        description="universe-service base URL (instruments: GET /v1/instruments).",
    )
    secrets_url: str = Field(
        validation_alias=_alias("POLICY_SECRETS_URL", "secrets_url"),
        description="secrets-service base URL (GET /v1/accounts/{account}/permissions).",
    )
    venue_url: str | None = Field(
        default=None, validation_alias=_alias("POLICY_VENUE_URL", "venue_url"),
        description="Venue REST base URL for the venue-wide GET /0/public/SystemStatus; unset = not checked.",
    )
    kraken_credentials_dir: Path | None = Field(
        default=None, validation_alias=_alias("KRAKEN_CREDENTIALS_DIR", "kraken_credentials_dir"),
        description="Directory with the files api_key and api_secret (read once at start-up, never logged).",
    )
    universe_poll_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias=_alias("POLICY_UNIVERSE_POLL_S", "universe_poll_s"),
        description="How often the instrument cache is refreshed from universe-service.",
    )
    venue_poll_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias=_alias("POLICY_VENUE_POLL_S", "venue_poll_s"),
        description="How often the venue's SystemStatus is polled (when POLICY_VENUE_URL is set).",
    )
    permissions_ttl_s: float = Field(
        default=10.0, ge=0, le=3600, validation_alias=_alias("POLICY_PERMISSIONS_TTL_S", "permissions_ttl_s"),
        description="Age after which an account's cached key permissions are refreshed (in the background).",
    )
    permissions_max_stale_s: float = Field(
        default=300.0, ge=0, le=86400,
        validation_alias=_alias("POLICY_PERMISSIONS_MAX_STALE_S", "permissions_max_stale_s"),
        description="Age after which cached permissions are no longer used at all (secrets-service down).",
    )
    permissions_cache_size: int = Field(
        default=50_000, ge=1, le=10_000_000,
        validation_alias=_alias("POLICY_PERMISSIONS_CACHE_SIZE", "permissions_cache_size"),
        description="Accounts whose permissions are kept in memory (least recently used evicted).",
    )
    rules_poll_s: float = Field(
        default=2.0, gt=0, le=3600, validation_alias=_alias("POLICY_RULES_POLL_S", "rules_poll_s"),
        description="How often the rules revision is polled (fallback to LISTEN/NOTIFY across replicas).",
    )
    upstream_timeout_s: float = Field(
        default=3.0, gt=0, le=60, validation_alias=_alias("POLICY_UPSTREAM_TIMEOUT_S", "upstream_timeout_s"),
        description="Timeout of one call to universe-, secrets-service or the venue.",
    )

    @field_validator("universe_url", "secrets_url", "venue_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")) or len(value) <= len("https://"):
            raise ValueError("must be an http(s):// URL")
        return value
