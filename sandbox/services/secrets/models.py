"""Request and response models of secrets-service (Create / Update / Public split).

Secret inputs (``api_key``, ``private_key``) are validated as bounded strings and
then held as :class:`pydantic.SecretStr`, so a model's ``repr`` (in a log line,
a traceback, a debugger) never shows them. Validation errors never echo them
either: the service strips ``input`` from every 422 body (see ``errors.py``).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime
from enum import Enum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, StringConstraints, field_validator

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MAX_KEYS_PER_ACCOUNT = 100

Account = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ACCOUNT_PATTERN)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")]

_SECRET_SCHEMA = {"writeOnly": True, "format": "password"}
ApiKey = Annotated[
    str,
    StringConstraints(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9+/=_-]+$"),
    AfterValidator(SecretStr),
    Field(description="Kraken API key (public half); stored encrypted, shown only as its last 4 characters.",
          json_schema_extra=_SECRET_SCHEMA),
]


def _check_private_key(text: str) -> SecretStr:
    """Check the private key is strict base64 of 16 to 256 bytes (the message never contains it)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("private_key must be standard base64") from None
    if not 16 <= len(raw) <= 256:
        raise ValueError("private_key must decode to between 16 and 256 bytes")
    return SecretStr(text)


PrivateKey = Annotated[
    str,
    StringConstraints(min_length=24, max_length=344, pattern=r"^[A-Za-z0-9+/]+={0,2}$"),
    AfterValidator(_check_private_key),
    Field(description="Kraken private key, base64 (16 to 256 bytes once decoded); never returned except by reveal.",
          json_schema_extra=_SECRET_SCHEMA),
]


class Permission(str, Enum):
    """Kraken API key permissions, as granted on the key at the exchange."""

    query_funds = "query_funds"
    deposit_funds = "deposit_funds"
    withdraw = "withdraw"
    query_open_orders = "query_open_orders"
    query_closed_orders = "query_closed_orders"
    trade = "trade"
    cancel_orders = "cancel_orders"
    query_ledger = "query_ledger"
    export_data = "export_data"
    websocket = "websocket"


Permissions = Annotated[list[Permission], Field(max_length=len(Permission))]


def _unique_sorted(values: list[Permission]) -> list[Permission]:
    if len(set(values)) != len(values):
        raise ValueError("permissions must not repeat")
    return sorted(values, key=lambda p: p.value)


class KrakenKeyCreate(BaseModel):
    """Body of ``POST /v1/accounts/{account}/kraken-keys``."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    label: Label
    api_key: ApiKey
    private_key: PrivateKey
    permissions: Permissions = Field(default_factory=list)

    @field_validator("permissions", mode="after")
    @classmethod
    def _permissions(cls, value: list[Permission]) -> list[Permission]:
        return _unique_sorted(value)


class KrakenKeyUpdate(BaseModel):
    """Body of ``PATCH .../kraken-keys/{key_id}``: metadata only (replace a key pair by creating a new one)."""

    model_config = ConfigDict(extra="forbid")

    label: Label | None = None
    permissions: Permissions | None = None

    @field_validator("permissions", mode="after")
    @classmethod
    def _permissions(cls, value: list[Permission] | None) -> list[Permission] | None:
        return None if value is None else _unique_sorted(value)


class KrakenKeyPublic(BaseModel):
    """Metadata of a stored key pair; never carries secret material."""

    key_id: uuid.UUID
    account: str
    label: str
    permissions: list[Permission]
    api_key_last4: str = Field(description="Last 4 characters of the API key.")
    fingerprint: str = Field(description="'sha256:' + the first 16 hex digits of SHA-256 over the API key.")
    key_version: int = Field(description="Master-key version the record is currently sealed under.")
    created_by: str
    created_at: datetime
    updated_at: datetime


class KrakenKeyList(BaseModel):
    """The key pairs of one account."""

    account: str
    items: list[KrakenKeyPublic]


class KrakenKeyRevealed(BaseModel):
    """Response of reveal: the plaintext key pair (only for service identities with ``secrets:reveal``)."""

    key_id: uuid.UUID
    account: str
    label: str
    api_key: str
    private_key: str
    permissions: list[Permission]
    key_version: int


class KeyPermissions(BaseModel):
    """One key's permissions, as exposed to policy-service."""

    key_id: uuid.UUID
    label: str
    permissions: list[Permission]


class AccountPermissions(BaseModel):
    """Permissions of every key of an account, plus their union."""

    account: str
    permissions: list[Permission] = Field(description="Union over the account's keys.")
    keys: list[KeyPermissions]


AuditAction = Literal["key.create", "key.import", "key.update", "key.delete", "key.reveal", "rotation.start", "rotation.finish"]
AuditOutcome = Literal["success", "denied", "failed"]


class AuditEvent(BaseModel):
    """One audit record."""

    id: int
    ts: datetime
    actor: str
    actor_kind: str
    action: str
    outcome: str
    account: str | None
    key_id: str | None
    reason: str | None
    request_id: str | None


class AuditPage(BaseModel):
    """A page of audit records, newest first; pass ``next_before_id`` as ``before_id`` for the next page."""

    items: list[AuditEvent]
    next_before_id: int | None


class RotationRequest(BaseModel):
    """Body of ``POST /v1/rotate``."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(default=100, ge=1, le=1000, description="Records re-encrypted per transaction.")
    pause_ms: int = Field(default=0, ge=0, le=10_000,
                          description="Pause between batches, to bound the load a rotation puts on the database.")
    rotate_data_keys: bool = Field(
        default=False,
        description="Also replace every record's data key and re-encrypt its payload "
        "(default: only re-wrap data keys not yet under the current master key).",
    )


RotationStatus = Literal["running", "completed", "completed_with_errors", "failed", "abandoned"]


class RotationJob(BaseModel):
    """State of a key-rotation job."""

    job_id: uuid.UUID
    status: RotationStatus
    target_version: int
    rotate_data_keys: bool
    batch_size: int
    pause_ms: int
    started_by: str
    started_at: datetime
    finished_at: datetime | None
    records_rotated: int
    records_failed: int
    batches: int
    failed_key_ids: list[uuid.UUID]
    error: str | None


class KeyRingStatus(BaseModel):
    """Key-ring versions of this replica and how many records each version seals."""

    current_version: int
    versions: list[int]
    records_by_version: dict[str, int]
    missing_versions: list[int] = Field(description="Versions records use that this replica's key ring lacks.")
