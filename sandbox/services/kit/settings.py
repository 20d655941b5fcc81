"""Settings every kit-based service reads (env prefix ``AETHER_``).

Built once at start-up by the service's ``create_app`` and passed down; no
module reads the environment at import time.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class KitSettings(BaseSettings):
    """Common settings: identity, bind address, auth wiring, limits."""

    model_config = SettingsConfigDict(env_prefix="AETHER_", extra="ignore", frozen=True)

    service_name: str = Field(min_length=1, description="Service name in logs and metric labels.")
    host: str = Field(default="127.0.0.1", description="Bind address (loopback in the sandbox).")
    port: int = Field(default=8000, ge=0, le=65535, description="Bind port.")
    log_level: str = Field(default="info", description="Root log level (debug, info, warning, error).")
    auth_url: str | None = Field(
        default=None, description="auth-service base URL (JWKS source); None only inside auth-service."
    )
    session_redis_url: str = Field(description="Redis holding auth sessions (revocation checks).")
    max_body_bytes: int = Field(default=1_048_576, ge=1, description="Largest accepted request body (else 413).")
    service_client_id: str | None = Field(default=None, description="Service account id for outgoing calls.")
    service_client_secret: str | None = Field(default=None, description="Service account secret (no default).")
    # Additions beyond the contract (backwards compatible, all defaulted):
    startup_timeout_s: float = Field(
        default=30.0, gt=0, description="How long start-up retries connecting to a dependency before failing."
    )
    token_cache_size: int = Field(default=10_000, ge=0, description="Verified-token LRU cache entries.")
    otlp_endpoint: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT", "otlp_endpoint"),
        description="OTLP/HTTP base URL (e.g. http://127.0.0.1:4318) spans are exported to; unset: no tracing.",
    )
