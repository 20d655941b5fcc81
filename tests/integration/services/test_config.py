"""config-service over HTTP: a real subprocess on embedded PostgreSQL and NATS, tokens from the real auth-service."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration

Start = Callable[..., Any]


@pytest.fixture
def config_env(postgres: Any, nats_server: Any, tmp_path: Path) -> dict[str, str]:
    """Env for a config-service on a fresh database, with its cache on a per-test directory."""
    dbname = f"config_{secrets.token_hex(4)}"
    postgres.create_database(dbname)
    return {
        "CONFIG_DATABASE_URL": postgres.dsn(dbname),
        "CONFIG_NATS_URL": nats_server.url,
        "CONFIG_CACHE_DIR": str(tmp_path / "cache"),
    }


@pytest.fixture
def config(start_service: Start, config_env: dict[str, str]) -> Any:
    """A running config-service."""
    return start_service("config", config_env)


def bearer(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


def put(url: str, token: str, value: Any, *, if_match: str | None = None, **body: Any) -> httpx.Response:
    """PUT a value (raw JSON text when ``value`` is bytes)."""
    headers = {**bearer(token), "Content-Type": "application/json"}
    if if_match is not None:
        headers["If-Match"] = if_match
    content = value if isinstance(value, bytes) else json.dumps({"value": value, **body}).encode()
    return httpx.put(url, content=content, headers=headers, timeout=10)


def read_metric(base: str, name: str, **labels: str) -> float:
    """The value of one sample on /metrics (0 when absent)."""
    text = httpx.get(f"{base}/metrics", timeout=5).text
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    match = re.search(rf"^{name}\{{{re.escape(want)}\}} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


def test_token_from_auth_accepted_and_revoked_token_rejected(
    config: Any, auth_service: Any, make_user: Callable[..., tuple[str, str, str]]
) -> None:
    _, _, token = make_user("viewer")
    assert httpx.get(f"{config.url}/v1/namespaces", headers=bearer(token), timeout=5).status_code == 200
    assert httpx.get(f"{config.url}/v1/namespaces", timeout=5).status_code == 401
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert httpx.get(f"{config.url}/v1/namespaces", headers=bearer(forged), timeout=5).status_code == 401
    assert httpx.post(f"{auth_service.url}/v1/logout", headers=bearer(token), timeout=5).status_code == 204
    resp = httpx.get(f"{config.url}/v1/config/risk/anything", headers=bearer(token), timeout=5)
    assert resp.status_code == 401
    assert resp.json()["error"] == "unauthorized" and resp.headers["WWW-Authenticate"] == "Bearer"


def test_optimistic_concurrency_and_history(config: Any, admin_token: str) -> None:
    url = f"{config.url}/v1/config/risk/limits.max_notional"
    created = put(url, admin_token, b'{"value": {"usd": 1000000.00, "fee": 0.0026}}')
    assert created.status_code == 201, created.text
    assert created.headers["ETag"] == '"1"' and created.headers["Location"] == "/v1/config/risk/limits.max_notional"
    assert created.json()["version"] == 1 and created.json()["changed_by"] == "admin"

    # A second create (no version named) is stale: 409 with the current version.
    again = put(url, admin_token, {"usd": 1})
    assert again.status_code == 409
    assert again.json()["error"] == "version_conflict"
    assert again.json()["detail"]["current_version"] == 1 and again.headers["ETag"] == '"1"'

    v2 = put(url, admin_token, {"usd": 2000000}, if_match='"1"')  # the ETag as read
    assert v2.status_code == 200 and v2.json()["version"] == 2
    stale = put(url, admin_token, {"usd": 3}, if_match="1")  # a writer still holding version 1
    assert stale.status_code == 409 and stale.json()["detail"] == {
        "current_version": 2, "expected_version": 1, "exists": True,
    }
    v3 = put(url, admin_token, b'{"value": {"usd": 3000000.50}, "expected_version": 2}')  # version in the body
    assert v3.status_code == 200 and v3.json()["version"] == 3
    clash = put(url, admin_token, 1, if_match="3", expected_version=2)
    assert clash.status_code == 400 and clash.json()["error"] == "invalid_precondition"

    read = httpx.get(url, headers=bearer(admin_token), timeout=5)
    assert read.status_code == 200 and read.headers["ETag"] == '"3"'
    assert b'"usd": 3000000.50' in read.content  # decimals exactly as written (not 3000000.5)
    assert json.loads(read.content, parse_float=Decimal)["value"] == {"usd": Decimal("3000000.50")}

    gone = httpx.delete(url, headers=bearer(admin_token), timeout=5)
    assert gone.status_code == 428 and gone.json()["error"] == "version_required"
    gone = httpx.delete(url, headers={**bearer(admin_token), "If-Match": "2"}, timeout=5)
    assert gone.status_code == 409 and gone.json()["detail"]["current_version"] == 3
    gone = httpx.delete(f"{url}?expected_version=3", headers=bearer(admin_token), timeout=5)
    assert gone.status_code == 200 and gone.json()["version"] == 4 and gone.json()["deleted"] is True
    missing = httpx.get(url, headers=bearer(admin_token), timeout=5)
    assert missing.status_code == 404 and missing.json()["error"] == "key_deleted"
    assert httpx.delete(url, headers={**bearer(admin_token), "If-Match": "4"}, timeout=5).status_code == 404

    recreated = put(url, admin_token, "back", if_match="0")
    assert recreated.status_code == 201 and recreated.json()["version"] == 5

    hist = httpx.get(f"{url}/history", headers=bearer(admin_token), timeout=5)
    assert hist.status_code == 200
    items = hist.json()["items"]
    assert [(i["version"], i["op"]) for i in items] == [
        (5, "create"), (4, "delete"), (3, "update"), (2, "update"), (1, "create"),
    ]
    assert items[1]["value"] is None and items[0]["value"] == "back"
    assert all(i["changed_by"] == "admin" and i["changed_at"].endswith("Z") for i in items)
    assert b'"usd": 1000000.00' in hist.content  # version 1 kept as written
    page = httpx.get(f"{url}/history?limit=2&before=4", headers=bearer(admin_token), timeout=5).json()
    assert [i["version"] for i in page["items"]] == [3, 2] and page["next_before"] == 2
    never = httpx.get(f"{config.url}/v1/config/risk/never/history", headers=bearer(admin_token), timeout=5)
    assert never.status_code == 404


def test_concurrent_writers_exactly_one_wins(config: Any, admin_token: str) -> None:
    url = f"{config.url}/v1/config/oms/max_orders"
    assert put(url, admin_token, 10).status_code == 201

    async def race() -> list[int]:
        async with httpx.AsyncClient(timeout=10) as client:
            headers = {**bearer(admin_token), "If-Match": '"1"'}
            responses = await asyncio.gather(
                *(client.put(url, json={"value": n}, headers=headers) for n in range(12))
            )
        return [r.status_code for r in responses]

    statuses = asyncio.run(race())
    assert sorted(statuses) == [200] + [409] * 11
    hist = httpx.get(f"{url}/history", headers=bearer(admin_token), timeout=5).json()["items"]
    assert [i["version"] for i in hist] == [2, 1]


def test_etag_and_if_none_match(config: Any, admin_token: str, make_user: Callable[..., Any]) -> None:
    _, _, trader = make_user("trader")
    url = f"{config.url}/v1/config/fees/maker"
    assert put(url, admin_token, 0.0016).status_code == 201
    first = httpx.get(url, headers=bearer(trader), timeout=5)
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag == '"1"'
    again = httpx.get(url, headers=bearer(trader), timeout=5)  # the kit's hot route now: the same answer
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert [(k, v) for k, v in again.headers.items() if k not in ("x-request-id", "date")] == \
        [(k, v) for k, v in first.headers.items() if k not in ("x-request-id", "date")]
    cached = httpx.get(url, headers={**bearer(trader), "If-None-Match": etag}, timeout=5)
    assert cached.status_code == 304 and cached.content == b"" and cached.headers["ETag"] == etag
    weak = httpx.get(url, headers={**bearer(trader), "If-None-Match": f'"9", W/{etag}'}, timeout=5)
    assert weak.status_code == 304
    assert put(url, admin_token, 0.0014, if_match=etag).status_code == 200
    changed = httpx.get(url, headers={**bearer(trader), "If-None-Match": etag}, timeout=5)
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"' and changed.json()["value"] == 0.0014
    assert read_metric(config.url, "config_reads_total", source="not_modified") == 2

    ns_url = f"{config.url}/v1/config/fees"
    page = httpx.get(ns_url, headers=bearer(trader), timeout=5)
    assert page.status_code == 200 and [i["key"] for i in page.json()["items"]] == ["maker"]
    again = httpx.get(ns_url, headers={**bearer(trader), "If-None-Match": page.headers["ETag"]}, timeout=5)
    assert again.status_code == 304
    # A 304 is still authenticated: without a token it is a 401.
    assert httpx.get(url, headers={"If-None-Match": '"2"'}, timeout=5).status_code == 401


def test_change_notification_reaches_a_nats_subscriber(config: Any, config_env: dict[str, str], admin_token: str) -> None:
    async def scenario() -> tuple[dict[str, Any], str, list[str]]:
        nc = await nats.connect(config_env["CONFIG_NATS_URL"])
        try:
            sub = await nc.subscribe("config.changed.alerts")
            other = await nc.subscribe("config.changed.other")
            await nc.flush()
            async with httpx.AsyncClient(timeout=10) as client:
                resp = await client.put(
                    f"{config.url}/v1/config/alerts/pager.enabled", json={"value": True}, headers=bearer(admin_token)
                )
                assert resp.status_code == 201, resp.text
            msg = await sub.next_msg(timeout=5)
            stray = []
            try:
                stray.append((await other.next_msg(timeout=0.3)).subject)
            except nats.errors.TimeoutError:
                pass
            # The JetStream stream kept it too, for consumers that were away.
            stored = await nc.jetstream().get_last_msg("CONFIG_CHANGES", "config.changed.alerts")
            assert json.loads(stored.data) == json.loads(msg.data)
            return json.loads(msg.data), msg.subject, stray
        finally:
            await nc.close()

    event, subject, stray = asyncio.run(scenario())
    assert subject == "config.changed.alerts" and stray == []
    assert event["namespace"] == "alerts" and event["key"] == "pager.enabled"
    assert event["version"] == 1 and event["op"] == "create" and event["changed_by"] == "admin"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$", event["at"])
    assert read_metric(config.url, "config_notifications_total", direction="published", outcome="ok") == 1


def test_cache_files_on_disk_invalidated_on_write_and_survive_restart(
    start_service: Start, config_env: dict[str, str], admin_token: str
) -> None:
    cache = Path(config_env["CONFIG_CACHE_DIR"])
    first = start_service("config", config_env)
    url = f"{first.url}/v1/config/venues/kraken.rate_limit"
    assert put(url, admin_token, {"per_second": 15}).status_code == 201
    body_v1 = httpx.get(url, headers=bearer(admin_token), timeout=5).content
    assert (cache / "venues" / "kraken.rate_limit" / "1.json").read_bytes() == body_v1
    assert put(url, admin_token, {"per_second": 20}, if_match="1").status_code == 200
    files = sorted(p.name for p in (cache / "venues" / "kraken.rate_limit").iterdir())
    assert files == ["2.json"]  # version 1 invalidated, version 2 written through
    body_v2 = httpx.get(url, headers=bearer(admin_token), timeout=5).content
    assert json.loads(body_v2)["value"] == {"per_second": 20}
    assert (cache / "venues" / "kraken.rate_limit" / "2.json").read_bytes() == body_v2
    first.stop()

    second = start_service("config", config_env)
    url = f"{second.url}/v1/config/venues/kraken.rate_limit"
    again = httpx.get(url, headers=bearer(admin_token), timeout=5)
    assert again.status_code == 200 and again.content == body_v2
    assert read_metric(second.url, "config_reads_total", source="disk") == 1
    assert read_metric(second.url, "config_reads_total", source="database") == 0
    httpx.get(url, headers=bearer(admin_token), timeout=5)
    assert read_metric(second.url, "config_reads_total", source="memory") == 1


def test_roles_and_service_account_scope(
    config: Any, admin_token: str, make_user: Callable[..., Any], service_token: Callable[..., str]
) -> None:
    url = f"{config.url}/v1/config/strategy/momentum.enabled"
    for role in ("viewer", "trader", "risk-officer"):
        _, _, token = make_user(role)
        denied = put(url, token, True)
        assert denied.status_code == 403 and denied.json()["error"] == "forbidden", role
        assert httpx.get(f"{config.url}/v1/namespaces", headers=bearer(token), timeout=5).status_code == 200
    plain = service_token("test-client")
    assert put(url, plain, True).status_code == 403
    writer = service_token("test-client", scope=["config:write"])
    created = put(url, writer, True)
    assert created.status_code == 201 and created.json()["changed_by"] == "test-client"
    gone = httpx.delete(url, headers={**bearer(writer), "If-Match": '"1"'}, timeout=5)
    assert gone.status_code == 200 and gone.json()["changed_by"] == "test-client"


def test_namespaces_listing_and_paging(config: Any, admin_token: str) -> None:
    for key in ("c", "a", "b", "d.e"):
        assert put(f"{config.url}/v1/config/paging/{key}", admin_token, key).status_code == 201
    assert put(f"{config.url}/v1/config/zeta/only", admin_token, 1).status_code == 201
    listing = httpx.get(f"{config.url}/v1/namespaces", headers=bearer(admin_token), timeout=5).json()["items"]
    assert [(i["namespace"], i["keys"]) for i in listing] == [("paging", 4), ("zeta", 1)]
    first = httpx.get(f"{config.url}/v1/config/paging?limit=3", headers=bearer(admin_token), timeout=5).json()
    assert [i["key"] for i in first["items"]] == ["a", "b", "c"] and first["next_after"] == "c"
    rest = httpx.get(f"{config.url}/v1/config/paging?limit=3&after=c", headers=bearer(admin_token), timeout=5).json()
    assert [i["value"] for i in rest["items"]] == ["d.e"] and rest["next_after"] is None
    empty = httpx.get(f"{config.url}/v1/config/nothing", headers=bearer(admin_token), timeout=5)
    assert empty.status_code == 200 and empty.json() == {"namespace": "nothing", "revision": 0, "items": [], "next_after": None}


BAD_WRITES = [
    ("/v1/config/Bad/key", b'{"value": 1}', {}, 422, "validation_error"),
    ("/v1/config/a.b/key", b'{"value": 1}', {}, 422, "validation_error"),
    ("/v1/config/ns/" + "k" * 129, b'{"value": 1}', {}, 422, "validation_error"),
    ("/v1/config/ns/.hidden", b'{"value": 1}', {}, 422, "validation_error"),
    ("/v1/config/ns/key", b'{"value": NaN}', {}, 422, "invalid_json"),
    ("/v1/config/ns/key", b'{"value": "a\\u0000"}', {}, 422, "invalid_value"),
    ("/v1/config/ns/key", b'{"value": ' + b"[" * 40 + b"]" * 40 + b"}", {}, 422, "invalid_value"),
    ("/v1/config/ns/key", b'{"value": 1, "extra": 2}', {}, 422, "validation_error"),
    ("/v1/config/ns/key", b'{"value": 1, "expected_version": "0"}', {}, 422, "validation_error"),
    ("/v1/config/ns/key", b'{"value": 1e99999}', {}, 422, "invalid_json"),
    ("/v1/config/ns/key", b"not json", {}, 422, "invalid_json"),
    ("/v1/config/ns/key", b"", {}, 422, "invalid_json"),
    ("/v1/config/ns/key", json.dumps({"value": "x" * 70_000}).encode(), {}, 413, "value_too_large"),
    ("/v1/config/ns/key", b"x" * 1_100_000, {}, 413, "request_entity_too_large"),
    ("/v1/config/ns/key", b'{"value": 1}', {"If-Match": "*"}, 400, "invalid_precondition"),
    ("/v1/config/ns/key", b'{"value": 1}', {"If-Match": "abc"}, 400, "invalid_precondition"),
    ("/v1/config/ns/key", b'{"value": 1}', {"If-Match": "5"}, 409, "version_conflict"),
    ("/v1/config/ns/key", b"value=1", {"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
]


def test_bad_writes_are_clear_4xx_and_write_nothing(config: Any, admin_token: str) -> None:
    for path, content, headers, status, code in BAD_WRITES:
        resp = httpx.put(
            f"{config.url}{path}", content=content,
            headers={**bearer(admin_token), "Content-Type": "application/json", **headers}, timeout=10,
        )
        case = f"{path[:40]} {content[:40]!r} {headers}"
        assert resp.status_code == status, f"{case}: {resp.status_code} {resp.text[:200]}"
        assert resp.json()["error"] == code and resp.json()["message"], case
    listing = httpx.get(f"{config.url}/v1/namespaces", headers=bearer(admin_token), timeout=5).json()
    assert listing == {"items": []}
    history = httpx.get(f"{config.url}/v1/config/ns/key/history", headers=bearer(admin_token), timeout=5)
    assert history.status_code == 404
    assert read_metric(config.url, "config_writes_total", op="put", outcome="committed") == 0


def test_replicas_converge_through_nats(start_service: Start, config_env: dict[str, str], tmp_path: Path, admin_token: str) -> None:
    # A long catch-up interval: convergence within seconds can only come from the notification.
    env = {**config_env, "CONFIG_SYNC_INTERVAL_S": "300"}
    a = start_service("config", env)
    b = start_service("config", {**env, "CONFIG_CACHE_DIR": str(tmp_path / "cache-b")})
    path = "/v1/config/killswitch/global"
    assert put(f"{a.url}{path}", admin_token, False).status_code == 201

    def b_sees(version: int) -> bool | str:
        resp = httpx.get(f"{b.url}{path}", headers=bearer(admin_token), timeout=5)
        return resp.status_code == 200 and resp.headers["ETag"] == f'"{version}"' or f"{resp.status_code} {resp.headers.get('ETag')}"

    wait_until(lambda: b_sees(1), timeout=5, interval=0.05, what="replica b sees version 1")
    assert put(f"{b.url}{path}", admin_token, True, if_match="1").status_code == 200
    wait_until(
        lambda: httpx.get(f"{a.url}{path}", headers=bearer(admin_token), timeout=5).headers.get("ETag") == '"2"',
        timeout=5, interval=0.05, what="replica a sees version 2",
    )
    assert httpx.get(f"{a.url}{path}", headers=bearer(admin_token), timeout=5).json()["value"] is True
    # a's stale write is refused although a's cache held version 1 a moment ago.
    assert put(f"{a.url}{path}", admin_token, False, if_match="1").status_code == 409


def test_health_and_metrics(config: Any) -> None:
    health = httpx.get(f"{config.url}/healthz", timeout=5).json()
    assert health["status"] == "ok"
    assert {"database", "nats", "sessions", "config_index"} <= set(health["checks"])
    assert httpx.get(f"{config.url}/healthz?probe=live", timeout=5).status_code == 200
    text = httpx.get(f"{config.url}/metrics", timeout=5).text
    assert "config_reads_total" in text and "http_requests_total" in text
