"""Request and response models of config-service, and the change event.

Names are validated by pattern and length so they are safe as URL segments,
file names in the cache directory and NATS subject tokens: a namespace is
lowercase letters, digits, ``_`` and ``-`` (no dots, because it becomes one
token of ``config.changed.<namespace>``); a key may also use ``.`` for
hierarchy (``limits.max_notional``) and upper case, and always starts with a
letter or digit (so never ``.`` or ``..``).

Values are arbitrary JSON. Responses are composed as bytes by
:mod:`sandbox.services.config.render` (numbers served exactly as stored); the
``*Public`` models here document those bodies in the OpenAPI schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

NAMESPACE_PATTERN = r"^[a-z][a-z0-9_-]{0,62}$"
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
NAMESPACE_MAX = 63
KEY_MAX = 128
#: The largest version number (PostgreSQL bigint, with room to spare).
VERSION_MAX = 2**62

Namespace = Annotated[str, StringConstraints(pattern=NAMESPACE_PATTERN, min_length=1, max_length=NAMESPACE_MAX)]
Key = Annotated[str, StringConstraints(pattern=KEY_PATTERN, min_length=1, max_length=KEY_MAX)]
Version = Annotated[int, Field(ge=0, le=VERSION_MAX)]

Op = Literal["create", "update", "delete"]


class ConfigWrite(BaseModel):
    """Body of ``PUT /v1/config/{namespace}/{key}``: the new value and the version the writer expects.

    ``expected_version`` may instead be sent as ``If-Match: <version>``; 0 (or neither)
    means "create: the key must not exist".
    """

    model_config = ConfigDict(extra="forbid", strict=True)

    value: Any = Field(description="The new value: any JSON document (bounded size and depth).")
    expected_version: Version | None = Field(
        default=None, description="Current version the write is based on; 0 to create. Alternative to If-Match."
    )


class ConfigEntryPublic(BaseModel):
    """One key at its current version."""

    namespace: str
    key: str
    version: int = Field(description="Version of this value; starts at 1 and grows by one per change (deletes too).")
    value: Any = Field(description="The JSON value, numbers exactly as written.")
    changed_by: str = Field(description="Subject (user or service account) that wrote this version.")
    changed_at: datetime


class ConfigDeletedPublic(BaseModel):
    """Result of a delete: the tombstone version (send it, or 0, as the expected version to re-create the key)."""

    namespace: str
    key: str
    version: int
    deleted: Literal[True] = True
    changed_by: str
    changed_at: datetime


class NamespacePagePublic(BaseModel):
    """A page of a namespace's live keys in key order."""

    namespace: str
    revision: int = Field(description="Changes whenever any key of the namespace changes (also the ETag).")
    items: list[ConfigEntryPublic]
    next_after: str | None = Field(description="Pass as ?after= for the next page; null on the last page.")


class NamespaceSummaryPublic(BaseModel):
    """One namespace: how many live keys it holds and its revision."""

    namespace: str
    keys: int
    revision: int


class NamespaceListPublic(BaseModel):
    """Every namespace holding at least one live key."""

    items: list[NamespaceSummaryPublic]


class HistoryItemPublic(BaseModel):
    """One version of a key, as written."""

    version: int
    op: Op
    value: Any = Field(description="The value of this version; null for a delete.")
    changed_by: str
    changed_at: datetime


class HistoryPublic(BaseModel):
    """Versions of one key, newest first."""

    namespace: str
    key: str
    items: list[HistoryItemPublic]
    next_before: int | None = Field(description="Pass as ?before= for older versions; null when none remain.")


class ChangeEvent(BaseModel):
    """Published on NATS subject ``config.changed.<namespace>`` after every committed change."""

    model_config = ConfigDict(extra="ignore")

    namespace: Namespace
    key: Key
    version: Version
    op: Op
    changed_by: str
    at: datetime
