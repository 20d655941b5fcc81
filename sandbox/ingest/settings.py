"""Ingest settings from the environment (prefix ``INGEST_``), built once at start-up.

The platform spec renders ``INGEST_KRAKEN_WS_URL`` (the venue simulator's
WebSocket) and ``INGEST_KAFKA_BOOTSTRAP``; the local runtime adds ``AETHER_HOST``
and ``AETHER_PORT`` for the HTTP endpoints.  Lists are comma separated
(``INGEST_SYMBOLS=XBT/USD,ETH/USD``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Channels the ingest knows how to normalise (v2 names; v1 ``spread`` is v1 only).
KNOWN_CHANNELS = ("book", "trade", "ticker", "ohlc", "spread")
#: Kraken's allowed book depths.
BOOK_DEPTHS = (10, 25, 100, 500, 1000)


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class IngestSettings(BaseSettings):
    """Everything ``python -m sandbox.ingest`` reads."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", extra="ignore", frozen=True, populate_by_name=True)

    kraken_ws_url: str = Field(
        default="ws://127.0.0.1:18081",
        description="Kraken WebSocket URL: the venue simulator in the sandbox, any Kraken-compatible URL.",
    )
    kafka_bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Symbols to subscribe (Kraken WS names, e.g. XBT/USD); empty: the shipped fixtures' symbols.",
    )
    channels: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["book", "trade"], description="Channels to subscribe (book, trade, ticker, ohlc, spread)."
    )
    depth: int = Field(default=10, description="Book depth to subscribe and keep (10, 25, 100, 500, 1000).")
    api_version: Literal["v2", "v1"] = Field(default="v2", description="Kraken WebSocket API version spoken.")
    topic_prefix: str = Field(default="kraken", description="Topics are PREFIX.CHANNEL.SYMBOL (slash as dash).")
    topic_partitions: int = Field(default=1, ge=1, description="Partitions of each topic created (1 keeps order).")
    linger_ms: int = Field(default=5, ge=0, description="Producer batching delay (linger.ms).")
    stale_after_s: float = Field(
        default=10.0, gt=0, description="No frame (not even a heartbeat) for this long: reconnect."
    )
    backoff_initial_s: float = Field(default=0.2, gt=0, description="First reconnect delay; doubles per failure.")
    backoff_max_s: float = Field(default=10.0, gt=0, description="Longest reconnect delay.")
    resubscribe_timeout_s: float = Field(
        default=5.0, gt=0, description="A resubscribe not answered with a snapshot in time: reconnect."
    )
    state_file: str | None = Field(default=None, description="Probe state file (default: per sandbox and port in /tmp).")
    host: str = Field(default="127.0.0.1", validation_alias=AliasChoices("AETHER_HOST", "host"), description="HTTP bind address.")
    port: int = Field(default=8000, ge=0, le=65535, validation_alias=AliasChoices("AETHER_PORT", "port"), description="HTTP port.")
    log_level: str = Field(default="info", description="Log level.")

    @field_validator("symbols", "channels", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split(value)

    @field_validator("channels")
    @classmethod
    def _known_channels(cls, value: list[str]) -> list[str]:
        unknown = [c for c in value if c not in KNOWN_CHANNELS]
        if unknown:
            raise ValueError(f"unknown channel(s) {', '.join(unknown)}; known: {', '.join(KNOWN_CHANNELS)}")
        return value

    @field_validator("depth")
    @classmethod
    def _kraken_depth(cls, value: int) -> int:
        if value not in BOOK_DEPTHS:
            raise ValueError(f"Kraken book depths are {', '.join(map(str, BOOK_DEPTHS))}")
        return value
