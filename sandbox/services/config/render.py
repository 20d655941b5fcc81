"""Response bodies composed as bytes around stored JSON text.

Values come out of PostgreSQL as ``jsonb`` text and go into responses (and the
response cache) without being parsed again: parsing would turn exact decimals
into floats and cost CPU on the read path. The envelopes here are the bodies
documented by the ``*Public`` models.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone


def timestamp(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _s(text: str) -> str:
    return json.dumps(text)


@dataclass(frozen=True, slots=True)
class Version:
    """One stored version of a key (a row of the history)."""

    namespace: str
    key: str
    version: int
    op: str
    value_text: str | None  # jsonb text; None for a delete
    changed_by: str
    changed_at: datetime


def entry_body(v: Version) -> bytes:
    """Body of ``GET /v1/config/{namespace}/{key}`` (a :class:`ConfigEntryPublic`)."""
    assert v.value_text is not None
    return (
        f'{{"namespace":{_s(v.namespace)},"key":{_s(v.key)},"version":{v.version},'
        f'"value":{v.value_text},"changed_by":{_s(v.changed_by)},"changed_at":{_s(timestamp(v.changed_at))}}}'
    ).encode()


def deleted_body(v: Version) -> bytes:
    """Body answering a delete (a :class:`ConfigDeletedPublic`)."""
    return (
        f'{{"namespace":{_s(v.namespace)},"key":{_s(v.key)},"version":{v.version},"deleted":true,'
        f'"changed_by":{_s(v.changed_by)},"changed_at":{_s(timestamp(v.changed_at))}}}'
    ).encode()


def history_item(v: Version) -> str:
    """One element of a history page (a :class:`HistoryItemPublic`)."""
    value = v.value_text if v.value_text is not None else "null"
    return (
        f'{{"version":{v.version},"op":{_s(v.op)},"value":{value},'
        f'"changed_by":{_s(v.changed_by)},"changed_at":{_s(timestamp(v.changed_at))}}}'
    )


def history_body(namespace: str, key: str, items: Iterable[Version], next_before: int | None) -> bytes:
    """Body of ``GET .../history`` (a :class:`HistoryPublic`)."""
    joined = ",".join(history_item(v) for v in items)
    nb = "null" if next_before is None else str(next_before)
    return f'{{"namespace":{_s(namespace)},"key":{_s(key)},"items":[{joined}],"next_before":{nb}}}'.encode()


def namespace_page_body(namespace: str, revision: int, entries: Iterable[bytes], next_after: str | None) -> bytes:
    """Body of ``GET /v1/config/{namespace}`` (a :class:`NamespacePagePublic`) from cached entry bodies."""
    na = "null" if next_after is None else _s(next_after)
    head = f'{{"namespace":{_s(namespace)},"revision":{revision},"items":['.encode()
    return head + b",".join(entries) + f'],"next_after":{na}}}'.encode()


def namespaces_body(rows: Iterable[tuple[str, int, int]]) -> bytes:
    """Body of ``GET /v1/namespaces`` (a :class:`NamespaceListPublic`) from (namespace, keys, revision)."""
    items = ",".join(f'{{"namespace":{_s(ns)},"keys":{n},"revision":{rev}}}' for ns, n, rev in rows)
    return f'{{"items":[{items}]}}'.encode()


def change_event(v: Version) -> bytes:
    """Payload of ``config.changed.<namespace>`` (a :class:`ChangeEvent`)."""
    return (
        f'{{"namespace":{_s(v.namespace)},"key":{_s(v.key)},"version":{v.version},"op":{_s(v.op)},'
        f'"changed_by":{_s(v.changed_by)},"at":{_s(timestamp(v.changed_at))}}}'
    ).encode()
