"""Settings of strategy-orchestrator, read once at start-up (exact environment names, no prefix).

``STRATEGY_DATABASE_URL`` comes from the platform spec (the seed's
``strategy-orchestrator-database`` secret) and has no default. The URLs of
capital-allocator and oms-service are needed to start and stop strategies;
without them the registry works and a start or stop fails with a reason
naming the missing variable. The rest are tuning knobs with safe defaults.
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class StrategySettings(BaseSettings):
    """strategy-orchestrator settings."""

    # hide_input_in_errors: the DSN carries a password and must never be echoed back.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, populate_by_name=False, hide_input_in_errors=True)

    database_url: str = Field(
        validation_alias="STRATEGY_DATABASE_URL", min_length=1,
        description="PostgreSQL DSN of the strategy_orchestrator database (workflow state; a secret).",
    )
    capital_allocator_url: str | None = Field(
        default=None, validation_alias="STRATEGY_CAPITAL_ALLOCATOR_URL",
        description="capital-allocator base URL (allocate on start, release on stop).",
    )
    oms_url: str | None = Field(
        default=None, validation_alias="STRATEGY_OMS_URL",
        description="oms-service base URL (cancel a strategy's open orders on stop).",
    )
    call_timeout_s: float = Field(
        default=5.0, gt=0, le=120, validation_alias="STRATEGY_CALL_TIMEOUT_S",
        description="Timeout of one call to capital-allocator or oms-service.",
    )
    call_attempts: int = Field(
        default=5, ge=1, le=100, validation_alias="STRATEGY_CALL_ATTEMPTS",
        description="Attempts per workflow step while the other service is unreachable or answers 5xx/429.",
    )
    retry_base_s: float = Field(
        default=0.5, gt=0, le=60, validation_alias="STRATEGY_RETRY_BASE_S",
        description="First back-off between attempts (doubles each time, capped by STRATEGY_RETRY_MAX_S).",
    )
    retry_max_s: float = Field(
        default=5.0, gt=0, le=600, validation_alias="STRATEGY_RETRY_MAX_S",
        description="Longest back-off between attempts.",
    )
    lease_s: float = Field(
        default=30.0, ge=1, le=3600, validation_alias="STRATEGY_WORKFLOW_LEASE_S",
        description="How long a replica owns a running workflow without renewing it; "
                    "after that another replica (or this one after a restart) resumes it.",
    )
    sweep_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="STRATEGY_SWEEP_S",
        description="How often a replica looks for workflows whose lease expired.",
    )
    cache_poll_s: float = Field(
        default=5.0, gt=0, le=3600, validation_alias="STRATEGY_CACHE_POLL_S",
        description="How often a replica compares its strategy cache with the database "
                    "(a fallback: changes arrive by LISTEN/NOTIFY within milliseconds).",
    )

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: str) -> str:
        if not value.startswith(("postgres://", "postgresql://")):
            raise ValueError("STRATEGY_DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator("capital_allocator_url", "oms_url", mode="before")
    @classmethod
    def _http_url(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            if not value:
                return None
            if not value.startswith(("http://", "https://")):
                raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _lease_covers_an_attempt(self) -> StrategySettings:
        """The lease is renewed before each attempt: it must outlast one call plus the longest back-off."""
        if self.lease_s <= self.call_timeout_s + self.retry_max_s:
            raise ValueError(
                "STRATEGY_WORKFLOW_LEASE_S must exceed STRATEGY_CALL_TIMEOUT_S + STRATEGY_RETRY_MAX_S "
                f"({self.call_timeout_s} + {self.retry_max_s})"
            )
        return self
