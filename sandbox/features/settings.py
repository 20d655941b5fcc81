"""Settings of the feature store component (``FEATURES_`` prefix), built once at start-up."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeatureSettings(BaseSettings):
    """What the feature server and the materialisation need."""

    model_config = SettingsConfigDict(env_prefix="FEATURES_", extra="ignore", frozen=True)

    redis_url: str = Field(min_length=1, description="The Redis online store, redis://host:port/db.")
    marketdata_url: str | None = Field(
        default=None, description="PostgreSQL DSN of the mirrored market data (market_trades, market_top_of_book)."
    )
    oms_url: str | None = Field(default=None, description="PostgreSQL DSN of the OMS database (positions).")
    home: Path = Field(description="Working directory: the rendered repository, its registry and exported data.")
    materialize_interval_s: float = Field(
        default=0, ge=0, le=86400, validation_alias="FEATURES_MATERIALIZE_INTERVAL_SECONDS",
        description="Period of the server's own materialisation (0 = only at start; the scheduler may run it).",
    )
    host: str = Field(default="127.0.0.1", validation_alias="AETHER_HOST", description="Address to serve on.")
    port: int = Field(default=6566, validation_alias="AETHER_PORT", description="Port of the HTTP feature server.")

    @property
    def repo_dir(self) -> Path:
        """The rendered feature repository."""
        return self.home / "repo"
