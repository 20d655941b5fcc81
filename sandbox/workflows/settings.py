"""Where the workflows find the platform: built once (environment or the running sandbox), passed down."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class WorkflowSettings(BaseSettings):
    """Addresses and directories of one workflow run (env prefix ``WORKFLOWS_``).

    The scheduler reads them from its environment (rendered from the platform
    spec); ``aether-sandbox workflow run`` builds them from the running sandbox
    (:func:`sandbox.workflows.locate.settings_for`).
    """

    model_config = SettingsConfigDict(env_prefix="WORKFLOWS_", extra="ignore", populate_by_name=True)

    postgres_url: str | None = Field(default=None, description="DSN of the maintenance database (creates and lists databases); default: the workflows DSN on database postgres")
    workflows_database_url: str = Field(description="DSN of the run-history database")
    marketdata_database_url: str = Field(description="DSN of the market-data database (mirror, CoinGecko)")
    oms_database_url: str | None = Field(default=None, description="DSN of the OMS database (the report's orders and fills)")
    kafka_bootstrap: str | None = Field(default=None, description="Kafka bootstrap servers (the mirror)")
    topic_prefix: str = Field(default="kraken", description="The ingest's topic prefix")
    coingecko_url: str | None = Field(default=None, description="CoinGecko API base URL (the simulator in the sandbox)")
    coingecko_vs_currency: str = "usd"
    coingecko_per_page: int = Field(default=10, ge=1, le=250)
    coingecko_chart_days: int = Field(default=1, ge=1, le=365)
    universe_url: str | None = Field(default=None, description="universe-service base URL (market caps)")
    auth_url: str | None = Field(default=None, validation_alias="AETHER_AUTH_URL")
    service_client_id: str | None = Field(default=None, validation_alias="AETHER_SERVICE_CLIENT_ID")
    service_client_secret: SecretStr | None = Field(default=None, validation_alias="AETHER_SERVICE_CLIENT_SECRET")
    reports_dir: Path = Field(default=Path("reports"), description="Where report-generation writes (relative: to the working directory)")
    report_date: date | None = Field(default=None, description="The report's day (UTC); default: the day of the latest activity")
    backup_dir: Path = Field(default=Path("backups"), description="Where the backup job writes")
    backup_keep: int = Field(default=7, ge=1, description="Backups kept by the scheduled job (older ones are deleted)")
    http_retries: int = Field(default=5, ge=0, le=20)
    http_backoff_initial_s: float = Field(default=0.5, ge=0)
    http_backoff_max_s: float = Field(default=10.0, ge=0)
    mirror_idle_s: float = Field(default=2.0, gt=0, description="The mirror stops after this long without a record")
    mirror_batch: int = Field(default=2000, ge=1, description="Records per committed transaction")

    @model_validator(mode="after")
    def _maintenance_url(self) -> WorkflowSettings:
        if self.postgres_url is None:
            from psycopg.conninfo import make_conninfo

            self.postgres_url = make_conninfo(self.workflows_database_url, dbname="postgres")
        return self
