"""Settings of the local observability components (env prefix ``AETHER_OBS_``), read once at start-up."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

_DURATION = r"^[0-9]+(ms|s|m|h)$"


class ObservabilitySettings(BaseSettings):
    """How the local Prometheus scrapes and evaluates (the defaults suit a developer's sandbox)."""

    model_config = SettingsConfigDict(env_prefix="AETHER_OBS_", extra="ignore", frozen=True)

    scrape_interval: str = Field(default="15s", pattern=_DURATION, description="Prometheus scrape interval.")
    evaluation_interval: str = Field(default="15s", pattern=_DURATION, description="Rule evaluation interval.")
    alert_for: str | None = Field(
        default=None, pattern=_DURATION,
        description="Override every alert's `for` (e.g. 5s to see alerts fire at once); unset: the SLO durations.",
    )
    retention: str = Field(default="2d", pattern=r"^[0-9]+(h|d|w)$", description="Prometheus TSDB retention.")
