"""Settings of oms-service: the platform spec's env names plus optional upstreams and tuning knobs.

Built once by :func:`sandbox.services.oms.app.create_app` and passed down; the
Kraken key pair is read from ``KRAKEN_CREDENTIALS_DIR`` at start-up (never from
the environment, never logged).
"""

from __future__ import annotations

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


def _http_url(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    value = value.strip().rstrip("/")
    if not value:
        return None
    if not value.startswith("http://"):
        raise ValueError(f"{name} must be an http:// URL")
    return value


class OmsSettings(BaseSettings):
    """oms-service settings (exact env names; no prefix)."""

    # hide_input_in_errors: DSNs carry passwords and must never be echoed back.
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=False, frozen=True, hide_input_in_errors=True)

    redis_url: str = Field(validation_alias="OMS_REDIS_URL", min_length=1,
                           description="Redis for idempotency keys (client order ids).")
    database_url: str = Field(validation_alias="OMS_SIMULATION_DATABASE_URL", min_length=1,
                              description="PostgreSQL DSN: orders, transitions, fills, positions, reconciliations.")
    kafka_bootstrap: str | None = Field(default=None, validation_alias="OMS_KAFKA_BOOTSTRAP",
                                        description="Kafka bootstrap; unset = no order/fill events are published.")
    nats_url: str | None = Field(default=None, validation_alias="OMS_NATS_URL",
                                 description="NATS for kill-switch broadcasts; unset = only risk's start-up state.")
    venue_url: str = Field(validation_alias="OMS_VENUE_URL", description="The venue's REST base URL.")
    venue_ws_url: str | None = Field(
        default=None, validation_alias="OMS_VENUE_WS_URL",
        description="The venue's private WebSocket (executions); default: OMS_VENUE_URL as ws:// + /ws-auth/v2.",
    )
    kraken_credentials_dir: str | None = Field(
        default=None, validation_alias="KRAKEN_CREDENTIALS_DIR",
        description="Directory with the files api_key and api_secret (the venue account's key pair).",
    )
    policy_url: str | None = Field(default=None, validation_alias="OMS_POLICY_URL",
                                   description="policy-service base URL; unset = the policy check is skipped.")
    risk_url: str | None = Field(default=None, validation_alias="OMS_RISK_URL",
                                 description="risk-service base URL; unset = the risk check is skipped.")
    fees_url: str | None = Field(default=None, validation_alias="OMS_FEES_URL",
                                 description="fees-service base URL; unset = no fee estimate.")
    capital_allocator_url: str | None = Field(
        default=None, validation_alias="OMS_CAPITAL_ALLOCATOR_URL",
        description="capital-allocator base URL; unset = strategy capital is not reserved.",
    )
    orders_topic: str = Field(default="oms.orders", validation_alias="OMS_ORDERS_TOPIC", pattern=TOPIC_PATTERN)
    fills_topic: str = Field(default="oms.fills", validation_alias="OMS_FILLS_TOPIC", pattern=TOPIC_PATTERN)
    check_timeout_s: float = Field(default=2.0, gt=0, le=30, validation_alias="OMS_CHECK_TIMEOUT_S",
                                   description="Timeout of one call to policy, risk, fees or the allocator.")
    venue_timeout_s: float = Field(default=5.0, gt=0, le=60, validation_alias="OMS_VENUE_TIMEOUT_S",
                                   description="Timeout of one venue REST call.")
    venue_max_in_flight: int = Field(
        default=1, ge=1, le=64, validation_alias="OMS_VENUE_MAX_IN_FLIGHT",
        description="Private venue calls outstanding at once; above 1 needs a key with a nonce window.",
    )
    poll_interval_s: float = Field(
        default=2.0, gt=0, le=600, validation_alias="OMS_POLL_INTERVAL_S",
        description="QueryOrders poll of open orders while the executions feed is down (5x slower while up).",
    )
    reconcile_on_startup: bool = Field(default=True, validation_alias="OMS_RECONCILE_ON_STARTUP")
    reconcile_interval_s: float = Field(default=0, ge=0, validation_alias="OMS_RECONCILE_INTERVAL_S",
                                        description="Periodic reconciliation (0 = only at start-up and on demand).")
    reconcile_lookback_s: float = Field(
        default=86_400, gt=0, validation_alias="OMS_RECONCILE_LOOKBACK_S",
        description="TradesHistory window before the last reconciliation (first run: this far back).",
    )
    adopt_account: str = Field(
        default="venue", validation_alias="OMS_ADOPT_ACCOUNT", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,63}$",
        description="Account given to venue orders the OMS did not place (adopted by reconciliation).",
    )
    idempotency_ttl_s: int = Field(default=7 * 86_400, ge=60, validation_alias="OMS_IDEMPOTENCY_TTL_S",
                                   description="Lifetime of a client order id's idempotency key in Redis.")
    unknown_outcome_grace_s: float = Field(
        default=3.0, gt=0, le=300, validation_alias="OMS_UNKNOWN_OUTCOME_GRACE_S",
        description="Wait before resolving an AddOrder whose answer was lost (the venue may still apply it).",
    )

    replica_name: str | None = Field(
        default=None, validation_alias="OMS_REPLICA_NAME", min_length=1, max_length=253,
        description="Names this replica, unique per replica; the orders it places carry its tag (default: host "
                    "name and port).",
    )
    foreign_event_grace_s: float = Field(
        default=3.0, ge=0, le=300, validation_alias="OMS_FOREIGN_EVENT_GRACE_S",
        description="Executions events of orders another replica placed wait this long for that replica to "
                    "apply them; those it has not are applied here. 0: every replica applies every event at once.",
    )

    @field_validator("policy_url", "risk_url", "fees_url", "capital_allocator_url", "venue_url", mode="before")
    @classmethod
    def _urls(cls, value: str | None, info: object) -> str | None:
        return _http_url(value, getattr(info, "field_name", "url"))

    def ws_url(self) -> str:
        """The executions WebSocket URL (explicit, or derived from the REST URL)."""
        if self.venue_ws_url:
            return self.venue_ws_url
        return "ws://" + self.venue_url.removeprefix("http://") + "/ws-auth/v2"
