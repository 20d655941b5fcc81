"""Per-app state of secrets-service and the dependencies that hand it to routes."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from prometheus_client import Counter

from sandbox.services.kit.auth import Principal
from sandbox.services.kit.logs import request_id_var
from sandbox.services.kit.metrics import counter
from sandbox.services.secrets.cache import MetadataCache
from sandbox.services.secrets.crypto import KeyRing
from sandbox.services.secrets.listener import ChangeListener
from sandbox.services.secrets.rotation import Rotator
from sandbox.services.secrets.settings import SecretsSettings
from sandbox.services.secrets.store import Actor


@dataclass
class Metrics:
    """Service-specific counters."""

    reveals: Counter
    writes: Counter
    integrity_failures: Counter
    rotated: Counter
    rotation_failures: Counter
    cache: Counter

    @classmethod
    def register(cls, app: FastAPI) -> Metrics:
        """Create the counters in the app's registry."""
        return cls(
            reveals=counter(app, "secrets_reveals_total", "Reveal attempts by outcome.", ["outcome"]),
            writes=counter(app, "secrets_key_writes_total", "Key pair writes by action.", ["action"]),
            integrity_failures=counter(app, "secrets_integrity_failures_total",
                                       "Stored ciphertexts that failed authentication."),
            rotated=counter(app, "secrets_rotated_records_total", "Records re-sealed by key rotation."),
            rotation_failures=counter(app, "secrets_rotation_failed_records_total",
                                      "Records a rotation could not open (skipped)."),
            cache=counter(app, "secrets_metadata_cache_total", "Metadata reads by cache result.", ["result"]),
        )


@dataclass
class AccountView:
    """One account's metadata, pre-encoded for the read endpoints (no secret material)."""

    list_json: bytes
    permissions_json: bytes
    key_json: dict[str, bytes]

    @classmethod
    def build(cls, account: str, items: list[dict[str, Any]]) -> AccountView:
        """Encode the list, the per-key documents and the permissions summary once."""
        union = sorted({p for item in items for p in item["permissions"]})
        perms = {"account": account, "permissions": union,
                 "keys": [{"key_id": i["key_id"], "label": i["label"], "permissions": i["permissions"]} for i in items]}
        return cls(
            list_json=dumps({"account": account, "items": items}),
            permissions_json=dumps(perms),
            key_json={i["key_id"]: dumps(i) for i in items},
        )


def dumps(doc: Any) -> bytes:
    """Compact JSON bytes (the one encoder of every metadata response, cached or not)."""
    return json.dumps(doc, separators=(",", ":")).encode()


@dataclass
class SecretsState:
    """Everything secrets-service routes need, built once per app."""

    settings: SecretsSettings
    ring: KeyRing
    metrics: Metrics
    cache: MetadataCache = field(default_factory=MetadataCache)
    listener: ChangeListener | None = None
    rotator: Rotator | None = None


def get_state(request: Request) -> SecretsState:
    """The app's :class:`SecretsState`."""
    return request.app.state.secrets


State = Annotated[SecretsState, Depends(get_state)]


def actor_of(principal: Principal) -> Actor:
    """The audit actor for a principal, carrying the current request id."""
    return Actor(principal.subject, principal.kind, request_id_var.get())


def anonymous_actor(reason_kind: str = "anonymous") -> Actor:
    """The audit actor for a caller without a valid token."""
    return Actor("-", reason_kind, request_id_var.get())
