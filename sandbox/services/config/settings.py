"""Settings of config-service, read once at start-up from the spec's environment names.

``CONFIG_DATABASE_URL``, ``CONFIG_NATS_URL`` and ``CONFIG_CACHE_DIR`` come from
the platform spec (``config-service.env``) and have no defaults. The other
names are optional tuning knobs with safe defaults.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ConfigSettings(BaseSettings):
    """config-service settings (exact environment names, no prefix)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=False)

    database_url: str = Field(validation_alias="CONFIG_DATABASE_URL", description="PostgreSQL DSN (a secret).")
    nats_url: str = Field(validation_alias="CONFIG_NATS_URL", description="NATS server for change notifications.")
    cache_dir: Path = Field(
        validation_alias="CONFIG_CACHE_DIR", description="Directory on the tmp volume holding cached read responses."
    )
    max_value_bytes: int = Field(
        default=65_536, ge=16, le=900_000, validation_alias="CONFIG_MAX_VALUE_BYTES",
        description="Largest value accepted, in bytes of its compact JSON encoding.",
    )
    memory_cache_bytes: int = Field(
        default=32 * 1024 * 1024, ge=0, le=1024 * 1024 * 1024, validation_alias="CONFIG_MEMORY_CACHE_BYTES",
        description="Bytes of response bodies kept in memory (LRU) in front of the disk cache.",
    )
    sync_interval_s: float = Field(
        default=2.0, gt=0, le=3600, validation_alias="CONFIG_SYNC_INTERVAL_S",
        description="Seconds between catch-ups with the database when no notification arrives.",
    )
    nats_stream: str = Field(
        default="CONFIG_CHANGES", pattern=r"^$|^[A-Za-z0-9_-]{1,64}$", validation_alias="CONFIG_NATS_STREAM",
        description="JetStream stream capturing config.changed.> (empty: plain NATS publish only).",
    )
