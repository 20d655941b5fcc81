"""Response bodies of config-service match their documented models and keep values exact."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from sandbox.services.config import render
from sandbox.services.config.models import (
    ChangeEvent,
    ConfigDeletedPublic,
    ConfigEntryPublic,
    HistoryPublic,
    NamespaceListPublic,
    NamespacePagePublic,
)

AT = datetime(2025, 3, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
V = render.Version("risk", "limits.max", 3, "update", '{"notional": 1000000.00, "name": "é\\"x"}', "alice", AT)


def test_entry_body() -> None:
    body = render.entry_body(V)
    ConfigEntryPublic.model_validate_json(body)
    doc = json.loads(body, parse_float=Decimal)
    assert doc["value"] == {"notional": Decimal("1000000.00"), "name": 'é"x'}
    assert b"1000000.00" in body  # served exactly as stored
    assert doc["changed_at"] == "2025-03-01T12:00:00.123456Z"


def test_timestamp_normalises_to_utc() -> None:
    assert render.timestamp(AT.astimezone(timezone(timedelta(hours=2)))) == "2025-03-01T12:00:00.123456Z"
    assert render.timestamp(datetime(2025, 1, 1)) == "2025-01-01T00:00:00Z"


def test_deleted_history_page_and_list_bodies() -> None:
    gone = render.Version("risk", "limits.max", 4, "delete", None, "svc-a", AT)
    assert ConfigDeletedPublic.model_validate_json(render.deleted_body(gone)).version == 4
    hist = HistoryPublic.model_validate_json(render.history_body("risk", "limits.max", [gone, V], 3))
    assert [i.op for i in hist.items] == ["delete", "update"] and hist.items[0].value is None
    assert hist.next_before == 3
    page = NamespacePagePublic.model_validate_json(
        render.namespace_page_body("risk", 9, [render.entry_body(V)], None)
    )
    assert page.revision == 9 and page.items[0].key == "limits.max" and page.next_after is None
    empty = NamespacePagePublic.model_validate_json(render.namespace_page_body("risk", 0, [], None))
    assert empty.items == []
    listing = NamespaceListPublic.model_validate_json(render.namespaces_body([("a", 2, 5), ("b", 1, 7)]))
    assert [(i.namespace, i.keys, i.revision) for i in listing.items] == [("a", 2, 5), ("b", 1, 7)]


def test_change_event_payload() -> None:
    event = ChangeEvent.model_validate_json(render.change_event(V))
    assert (event.namespace, event.key, event.version, event.op, event.changed_by) == ("risk", "limits.max", 3, "update", "alice")
    assert event.at == AT
