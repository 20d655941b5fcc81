"""Settings of fees-service: the platform spec's env names, plus tuning knobs with defaults.

Built once by :func:`sandbox.services.fees.app.create_app` and passed down.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class FeesSettings(BaseSettings):
    """fees-service settings (exact env names; no prefix)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, frozen=True)

    database_url: str = Field(validation_alias="FEES_DATABASE_URL", min_length=1, description="PostgreSQL DSN.")
    kafka_bootstrap: str | None = Field(
        default=None, validation_alias="FEES_KAFKA_BOOTSTRAP",
        description="Kafka bootstrap servers; unset = no fill consumer (fills only via POST /v1/fills).",
    )
    universe_url: str | None = Field(
        default=None, validation_alias="FEES_UNIVERSE_URL",
        description="universe-service base URL; unset = schedules only via PUT /v1/schedules/{symbol}.",
    )
    kraken_credentials_dir: str | None = Field(
        default=None, validation_alias="KRAKEN_CREDENTIALS_DIR",
        description="Mounted Kraken credentials (accepted for spec parity; the estimator does not need them).",
    )
    fills_topic: str = Field(
        default="oms.fills", validation_alias="FEES_FILLS_TOPIC", pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="Kafka topic of OMS fills.",
    )
    fills_topic_partitions: int = Field(
        default=4, ge=1, le=64, validation_alias="FEES_FILLS_TOPIC_PARTITIONS",
        description="Partitions when this service has to create the fills topic.",
    )
    consumer_group: str = Field(
        default="fees-service", validation_alias="FEES_CONSUMER_GROUP", min_length=1, max_length=200,
        description="Kafka consumer group (replicas share the topic's partitions).",
    )
    kafka_session_timeout_ms: int = Field(
        default=6000, ge=1000, le=300_000, validation_alias="FEES_KAFKA_SESSION_TIMEOUT_MS",
        description="Consumer session timeout (~6000 ms keeps Tansu's group join near 3 s).",
    )
    schedule_ttl_s: float = Field(
        default=300.0, gt=0, validation_alias="FEES_SCHEDULE_TTL_SECONDS",
        description="Age after which a schedule from universe-service is fetched again (in the background).",
    )
    schedule_miss_ttl_s: float = Field(
        default=10.0, ge=0, validation_alias="FEES_SCHEDULE_MISS_TTL_SECONDS",
        description="How long an instrument universe-service does not know is remembered as unknown.",
    )
    schedule_reload_s: float = Field(
        default=5.0, gt=0, validation_alias="FEES_SCHEDULE_RELOAD_SECONDS",
        description="Period of the background reload of schedules from the database (replica coherence).",
    )
    volume_cache_ttl_s: float = Field(
        default=2.0, ge=0, validation_alias="FEES_VOLUME_CACHE_SECONDS",
        description="How long an account's 30-day volume is served from memory.",
    )
    volume_window_days: int = Field(
        default=30, ge=1, le=365, validation_alias="FEES_VOLUME_WINDOW_DAYS",
        description="Volume window (Kraken: 30 days).",
    )
    fee_rounding: Literal["half_up", "up"] = Field(
        default="half_up", validation_alias="FEES_FEE_ROUNDING",
        description="Rounding of the fee to the quote precision: half_up (ROUND_HALF_UP) or up (ROUND_UP).",
    )
