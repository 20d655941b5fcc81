"""Settings of risk-service: the platform spec's env names, plus tuning knobs with defaults.

Built once by :func:`sandbox.services.risk.app.create_app` and passed down.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class RiskSettings(BaseSettings):
    """risk-service settings (exact env names; no prefix)."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, frozen=True)

    compliance_database_url: str = Field(
        validation_alias="RISK_COMPLIANCE_DATABASE_URL", min_length=1,
        description="PostgreSQL DSN of the compliance dataset (restricted list, kill switches, their audit).",
    )
    diversification_database_url: str = Field(
        validation_alias="RISK_DIVERSIFICATION_DATABASE_URL", min_length=1,
        description="PostgreSQL DSN of the diversification dataset (limits, fills, positions, marks, their audit).",
    )
    esg_database_url: str = Field(
        validation_alias="RISK_ESG_DATABASE_URL", min_length=1,
        description="PostgreSQL DSN of the ESG dataset (exclusions and their audit).",
    )
    kafka_bootstrap: str | None = Field(
        default=None, validation_alias="RISK_KAFKA_BOOTSTRAP",
        description="Kafka bootstrap servers; unset = no fill consumer (positions only move with fills on Kafka).",
    )
    nats_url: str | None = Field(
        default=None, validation_alias="RISK_NATS_URL",
        description="NATS URL for the kill-switch broadcast; unset = kill switches are persisted but not broadcast.",
    )
    capital_allocator_url: str | None = Field(
        default=None, validation_alias="RISK_CAPITAL_ALLOCATOR_URL",
        description="capital-allocator base URL; unset = the capital rule is skipped.",
    )
    kraken_credentials_dir: str | None = Field(
        default=None, validation_alias="KRAKEN_CREDENTIALS_DIR",
        description="Mounted Kraken credentials (accepted for spec parity; the checks do not need them).",
    )
    fills_topic: str = Field(
        default="oms.fills", validation_alias="RISK_FILLS_TOPIC", pattern=r"^[A-Za-z0-9._-]{1,249}$",
        description="Kafka topic of OMS fills.",
    )
    fills_topic_partitions: int = Field(
        default=4, ge=1, le=64, validation_alias="RISK_FILLS_TOPIC_PARTITIONS",
        description="Partitions when this service has to create the fills topic.",
    )
    consumer_group: str = Field(
        default="risk-service", validation_alias="RISK_CONSUMER_GROUP", min_length=1, max_length=200,
        description="Kafka consumer group (replicas share the partitions; positions reach every replica via NOTIFY).",
    )
    kafka_session_timeout_ms: int = Field(
        default=6000, ge=1000, le=300_000, validation_alias="RISK_KAFKA_SESSION_TIMEOUT_MS",
        description="Consumer session timeout (~6000 ms keeps Tansu's group join near 3 s).",
    )
    capital_ttl_s: float = Field(
        default=5.0, ge=0, le=3600, validation_alias="RISK_CAPITAL_TTL_SECONDS",
        description="How long a strategy's available capital is served from memory.",
    )
    capital_error_ttl_s: float = Field(
        default=1.0, ge=0, le=60, validation_alias="RISK_CAPITAL_ERROR_TTL_SECONDS",
        description="How long a failed capital lookup is remembered (so an outage does not add latency per check).",
    )
    capital_timeout_s: float = Field(
        default=1.0, gt=0, le=30, validation_alias="RISK_CAPITAL_TIMEOUT_SECONDS",
        description="Timeout of one capital-allocator request.",
    )
    killswitch_rebroadcast_s: float = Field(
        default=30.0, ge=0, le=3600, validation_alias="RISK_KILLSWITCH_REBROADCAST_SECONDS",
        description="Period of the re-broadcast of active kill switches on NATS (0 = only on change and start-up).",
    )
    reload_s: float = Field(
        default=60.0, gt=0, le=86400, validation_alias="RISK_RELOAD_SECONDS",
        description="Period of the full reload of every dataset (a safety net beside LISTEN/NOTIFY).",
    )
    feature_server_url: str | None = Field(
        default=None, validation_alias="RISK_FEATURE_SERVER_URL",
        description="Feast feature server base URL; unset = position limits are not volatility-scaled.",
    )
    volatility_feature: str = Field(
        default="symbol_volatility_1m:realised_vol_1m", validation_alias="RISK_VOLATILITY_FEATURE",
        pattern=r"^[a-z0-9_]+:[a-z0-9_]+$", description="The feature (VIEW:NAME) holding a symbol's volatility.",
    )
    volatility_reference: Decimal = Field(
        default=Decimal("0.001"), gt=0, le=10, validation_alias="RISK_VOLATILITY_REFERENCE",
        description="1-minute realised volatility at or below which a position limit applies in full; above it "
        "the limit is multiplied by reference / volatility.",
    )
    volatility_floor: Decimal = Field(
        default=Decimal("0.1"), gt=0, le=1, validation_alias="RISK_VOLATILITY_FLOOR",
        description="Smallest scaling factor: a limit never shrinks below floor * limit.",
    )
    volatility_ttl_s: float = Field(
        default=5.0, ge=0, le=3600, validation_alias="RISK_VOLATILITY_TTL_SECONDS",
        description="How long a symbol's volatility is served from memory.",
    )
    volatility_error_ttl_s: float = Field(
        default=1.0, ge=0, le=60, validation_alias="RISK_VOLATILITY_ERROR_TTL_SECONDS",
        description="How long a failed feature-server lookup is remembered.",
    )
    feature_timeout_s: float = Field(
        default=0.5, gt=0, le=30, validation_alias="RISK_FEATURE_TIMEOUT_SECONDS",
        description="Timeout of one feature-server request.",
    )
