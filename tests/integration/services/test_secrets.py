"""secrets-service over HTTP: a real subprocess on embedded PostgreSQL/Redis, tokens from the real auth-service.

Covers create/list/get/update/delete, reveal (allowed only to scoped service
identities; every attempt audited), revoked tokens, tampered ciphertexts
(integrity errors), key rotation while reads continue (two replicas with
different key rings), cache coherence across replicas, the credentials-dir
import, and that no secret reaches a response body or the log.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

pytestmark = pytest.mark.integration

K1 = base64.b64encode(os.urandom(32)).decode()
K2 = base64.b64encode(os.urandom(32)).decode()


def new_pair() -> tuple[str, str]:
    """A Kraken-shaped key pair: a 56-character API key and a base64 64-byte private key."""
    return base64.b64encode(os.urandom(42)).decode().replace("/", "_"), base64.b64encode(os.urandom(64)).decode()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


class Api:
    """A thin HTTP client for one secrets-service replica."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=10)

    def keys(self, account: str) -> str:
        return f"/v1/accounts/{account}/kraken-keys"

    def create(self, token: str, account: str, label: str, api_key: str, private_key: str,
               permissions: list[str] | None = None) -> httpx.Response:
        body = {"label": label, "api_key": api_key, "private_key": private_key,
                "permissions": permissions if permissions is not None else ["query_funds", "trade"]}
        return self.http.post(self.keys(account), json=body, headers=bearer(token))

    def reveal(self, token: str | None, account: str, key_id: str) -> httpx.Response:
        return self.http.post(f"{self.keys(account)}/{key_id}/reveal", headers=bearer(token) if token else {})

    def get(self, token: str, path: str, **params: Any) -> httpx.Response:
        return self.http.get(path, headers=bearer(token), params=params)

    def audit(self, token: str, **params: Any) -> list[dict[str, Any]]:
        resp = self.get(token, "/v1/audit", **params)
        assert resp.status_code == 200, resp.text
        return resp.json()["items"]

    def metric(self, name: str) -> float:
        total = 0.0
        for line in self.http.get("/metrics").text.splitlines():
            if line.startswith(name) and not line.startswith("#"):
                total += float(line.rsplit(" ", 1)[1])
        return total


@pytest.fixture
def secrets_env(postgres: Any, tmp_path: Path) -> dict[str, str]:
    """Env for a secrets-service on a fresh database, key ring {1: K1}, an empty credentials dir."""
    db = f"secrets_{uuid.uuid4().hex[:12]}"
    postgres.create_database(db)
    creds = tmp_path / "kraken"
    creds.mkdir()
    return {
        "SECRETS_DATABASE_URL": postgres.dsn(db),
        "SECRETS_ENCRYPTION_KEY": json.dumps({"1": K1}),
        "KRAKEN_CREDENTIALS_DIR": str(creds),
    }


@pytest.fixture
def reveal_token(service_token: Callable[..., str]) -> str:
    """A service token holding scope secrets:reveal."""
    return service_token("test-client", ["secrets:reveal"])


def logout(auth_url: str, token: str) -> None:
    resp = httpx.post(f"{auth_url}/v1/logout", headers=bearer(token), timeout=10)
    assert resp.status_code == 204, resp.text


def test_health_and_metrics_need_no_token(start_service: Any, secrets_env: dict[str, str]) -> None:
    api = Api(start_service("secrets", secrets_env).url)
    health = api.http.get("/healthz")
    assert health.status_code == 200 and health.json()["checks"]["database"] == "ok"
    assert "secrets_reveals_total" in api.http.get("/metrics").text
    assert api.http.get("/v1/accounts/acct/kraken-keys").status_code == 401
    assert api.http.get("/v1/audit").status_code == 401


def test_key_lifecycle_with_metadata_only(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, make_user: Any, service_token: Any
) -> None:
    api = Api(start_service("secrets", secrets_env).url)
    _, _, viewer = make_user("viewer")
    _, _, trader = make_user("trader")
    api_key, private_key = new_pair()

    created = api.create(admin_token, "acct-1", "primary", api_key, private_key, ["trade", "query_funds"])
    assert created.status_code == 201, created.text
    doc = created.json()
    key_id = doc["key_id"]
    assert created.headers["location"] == f"/v1/accounts/acct-1/kraken-keys/{key_id}"
    assert doc["api_key_last4"] == api_key[-4:] and doc["fingerprint"].startswith("sha256:")
    assert doc["permissions"] == ["query_funds", "trade"] and doc["key_version"] == 1
    assert doc["created_by"] == "admin"

    listed = api.get(viewer, api.keys("acct-1"))
    one = api.get(viewer, f"{api.keys('acct-1')}/{key_id}")
    assert listed.status_code == 200 and one.status_code == 200
    assert listed.json()["items"] == [doc] and one.json() == doc
    for resp in (created, listed, one):
        assert api_key not in resp.text and private_key not in resp.text
        assert api_key[:-4] not in resp.text

    assert api.create(trader, "acct-1", "mine", *new_pair()).status_code == 403
    dup = api.create(admin_token, "acct-1", "other", api_key, new_pair()[1])
    assert dup.status_code == 409 and dup.json()["error"] == "duplicate_api_key" and api_key not in dup.text
    dup_label = api.create(admin_token, "acct-1", "primary", *new_pair())
    assert dup_label.status_code == 409 and dup_label.json()["error"] == "duplicate_label"
    # The same API key under another account is another record.
    assert api.create(admin_token, "acct-2", "primary", api_key, private_key).status_code == 201

    second = api.create(admin_token, "acct-1", "withdrawals", *new_pair(), ["withdraw"]).json()
    perms = api.get(service_token(), "/v1/accounts/acct-1/permissions")
    assert perms.status_code == 200
    assert perms.json()["permissions"] == ["query_funds", "trade", "withdraw"]
    assert {k["key_id"]: k["permissions"] for k in perms.json()["keys"]} == {
        key_id: ["query_funds", "trade"], second["key_id"]: ["withdraw"]}
    assert api.get(viewer, "/v1/accounts/nobody/permissions").json() == {
        "account": "nobody", "permissions": [], "keys": []}

    path = f"{api.keys('acct-1')}/{key_id}"
    assert api.http.patch(path, json={"label": "renamed"}, headers=bearer(viewer)).status_code == 403
    patched = api.http.patch(path, json={"label": "renamed", "permissions": ["query_funds"]}, headers=bearer(admin_token))
    assert patched.status_code == 200 and patched.json()["label"] == "renamed"
    assert api.get(viewer, path).json()["permissions"] == ["query_funds"]  # the cache saw the write
    assert api.get(viewer, "/v1/accounts/acct-1/permissions").json()["permissions"] == ["query_funds", "withdraw"]
    bad_patch = api.http.patch(path, json={"private_key": private_key}, headers=bearer(admin_token))
    assert bad_patch.status_code == 422 and private_key not in bad_patch.text
    assert api.http.patch(path, json={}, headers=bearer(admin_token)).status_code == 422

    assert api.http.delete(path, headers=bearer(viewer)).status_code == 403
    assert api.http.delete(path, headers=bearer(admin_token)).status_code == 204
    assert api.get(viewer, path).status_code == 404
    assert api.http.delete(path, headers=bearer(admin_token)).status_code == 404
    assert [k["key_id"] for k in api.get(viewer, api.keys("acct-1")).json()["items"]] == [second["key_id"]]
    assert api.get(viewer, f"{api.keys('acct-1')}/not-a-uuid").status_code == 422
    assert api.get(viewer, api.keys("bad account!")).status_code == 422

    actions = [(e["action"], e["outcome"]) for e in api.audit(admin_token, key_id=key_id)]
    assert actions == [("key.delete", "success"), ("key.update", "success"), ("key.create", "success")]
    assert api.get(viewer, "/v1/audit").status_code == 403


def test_validation_errors_never_echo_secrets(start_service: Any, secrets_env: dict[str, str], admin_token: str) -> None:
    api = Api(start_service("secrets", secrets_env).url)
    api_key, private_key = new_pair()
    cases = [
        {"label": "x", "api_key": api_key, "private_key": private_key + "%"},
        {"label": "x", "api_key": api_key + "!", "private_key": private_key},
        {"label": "x", "api_key": api_key, "private_key": private_key, "note": private_key},
        {"label": "x", "api_key": api_key, "private_key": private_key[:-2] + "A", "permissions": ["root"]},
        {"label": "x" * 100, "api_key": api_key, "private_key": private_key * 5},
    ]
    for body in cases:
        resp = api.http.post(api.keys("acct"), json=body, headers=bearer(admin_token))
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"] == "validation_error"
        assert private_key[:20] not in resp.text and api_key[:20] not in resp.text
    raw = api.http.post(api.keys("acct"), content=b'{"api_key": "' + api_key.encode() + b'", ',
                        headers={**bearer(admin_token), "Content-Type": "application/json"})
    assert raw.status_code == 422 and api_key not in raw.text
    assert api.get(admin_token, api.keys("acct")).json()["items"] == []  # nothing partially written


def test_reveal_is_for_scoped_service_identities_and_every_attempt_is_audited(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, make_user: Any,
    service_token: Any, reveal_token: str,
) -> None:
    api = Api(start_service("secrets", secrets_env).url)
    api_key, private_key = new_pair()
    key_id = api.create(admin_token, "acct", "primary", api_key, private_key).json()["key_id"]
    _, _, risk = make_user("risk-officer")

    denied = {
        "admin user": api.reveal(admin_token, "acct", key_id),
        "risk-officer user": api.reveal(risk, "acct", key_id),
        "service without scope": api.reveal(service_token("test-client", ["something:else"]), "acct", key_id),
    }
    for who, resp in denied.items():
        assert resp.status_code == 403, who
        assert resp.json()["error"] == "reveal_forbidden" and private_key not in resp.text
    anonymous = api.reveal(None, "acct", key_id)
    forged = api.reveal("not.a.token", "acct", key_id)
    assert anonymous.status_code == 401 and forged.status_code == 401

    ok = api.reveal(reveal_token, "acct", key_id)
    assert ok.status_code == 200, ok.text
    assert ok.json()["api_key"] == api_key and ok.json()["private_key"] == private_key
    assert ok.json()["permissions"] == ["query_funds", "trade"] and ok.json()["key_version"] == 1
    assert "no-store" in ok.headers["cache-control"]

    missing = api.reveal(reveal_token, "acct", str(uuid.uuid4()))
    wrong_account = api.reveal(reveal_token, "other", key_id)
    malformed = api.reveal(reveal_token, "acct", "nope")
    assert missing.status_code == 404 and wrong_account.status_code == 404 and malformed.status_code == 422

    events = api.audit(admin_token, action="key.reveal", account="acct", key_id=key_id)
    got = sorted((e["actor"], e["actor_kind"], e["outcome"]) for e in events)
    risk_name = next(e["actor"] for e in events if e["actor"] not in ("admin", "test-client", "-"))
    assert got == sorted([
        ("admin", "user", "denied"), (risk_name, "user", "denied"), ("test-client", "service", "denied"),
        ("-", "anonymous", "denied"), ("-", "anonymous", "denied"), ("test-client", "service", "success"),
    ])
    assert all(e["request_id"] for e in events)
    failed = api.audit(admin_token, action="key.reveal", outcome="failed")
    assert sorted(e["reason"] for e in failed) == ["invalid_request", "key_not_found", "key_not_found"]
    page = api.get(admin_token, "/v1/audit", limit=2)
    assert len(page.json()["items"]) == 2 and page.json()["next_before_id"] is not None
    rest = api.audit(admin_token, before_id=page.json()["next_before_id"])
    assert all(e["id"] < page.json()["next_before_id"] for e in rest)
    assert api.get(admin_token, "/v1/audit", since="2020-01-01T00:00:00").status_code == 422
    assert api.metric('secrets_reveals_total{outcome="denied"}') == 5
    assert api.metric('secrets_reveals_total{outcome="success"}') == 1


def test_revoked_tokens_are_rejected(
    start_service: Any, secrets_env: dict[str, str], auth_service: Any, admin_token: str, make_user: Any,
    service_token: Any,
) -> None:
    api = Api(start_service("secrets", secrets_env).url)
    key_id = api.create(admin_token, "acct", "primary", *new_pair()).json()["key_id"]
    _, _, viewer = make_user("viewer")
    assert api.get(viewer, api.keys("acct")).status_code == 200
    logout(auth_service.url, viewer)
    revoked = api.get(viewer, api.keys("acct"))
    assert revoked.status_code == 401 and revoked.headers["www-authenticate"] == "Bearer"

    svc = service_token("test-client", ["secrets:reveal"])
    assert api.reveal(svc, "acct", key_id).status_code == 200
    logout(auth_service.url, svc)
    assert api.reveal(svc, "acct", key_id).status_code == 401
    last = api.audit(admin_token, key_id=key_id, action="key.reveal")[0]
    assert last["outcome"] == "denied" and "revoked" in last["reason"]


def _tamper(dsn: str, sql: str, *params: Any) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(sql, params)


def test_tampered_ciphertext_is_an_integrity_error(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, reveal_token: str
) -> None:
    svc = start_service("secrets", secrets_env)
    api = Api(svc.url)
    ids = [api.create(admin_token, "acct", f"k{i}", *new_pair()).json()["key_id"] for i in range(3)]
    dsn = secrets_env["SECRETS_DATABASE_URL"]
    # One flipped bit in the payload; a wrapped key moved from another record (copy-paste attack).
    _tamper(dsn, "UPDATE kraken_keys SET ciphertext = set_byte(ciphertext, 20, get_byte(ciphertext, 20) # 1)"
                 " WHERE key_id = %s", ids[0])
    _tamper(dsn, "UPDATE kraken_keys SET wrapped_key = (SELECT wrapped_key FROM kraken_keys WHERE key_id = %s)"
                 " WHERE key_id = %s", ids[2], ids[1])
    for key_id in ids[:2]:
        resp = api.reveal(reveal_token, "acct", key_id)
        assert resp.status_code == 409, resp.text
        assert resp.json()["error"] == "integrity_error" and key_id in resp.json()["message"]
    assert api.reveal(reveal_token, "acct", ids[2]).status_code == 200
    assert api.metric("secrets_integrity_failures_total") == 2
    failed = api.audit(admin_token, outcome="failed", action="key.reveal")
    assert sorted(e["key_id"] for e in failed) == sorted(ids[:2]) and {e["reason"] for e in failed} == {"integrity_error"}
    logged = [json.loads(line) for line in svc.log_path.read_text().splitlines() if line.startswith("{")]
    errors = [r for r in logged if r["msg"] == "stored ciphertext failed authentication"]
    assert {r["key_id"] for r in errors} == set(ids[:2]) and all(r["level"] == "error" for r in errors)

    # A rotation never re-seals a broken record: it reports it.
    job = api.http.post("/v1/rotate", json={"rotate_data_keys": True}, headers=bearer(admin_token)).json()
    done = wait_for_job(api, admin_token, job["job_id"])
    assert done["status"] == "completed_with_errors" and done["records_rotated"] == 1
    assert sorted(done["failed_key_ids"]) == sorted(ids[:2])
    # The audit trail itself is append-only.
    with pytest.raises(psycopg.errors.RaiseException):
        _tamper(dsn, "DELETE FROM audit_events")


def wait_for_job(api: Api, token: str, job_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Poll a rotation job until it leaves 'running'."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(token, f"/v1/rotations/{job_id}").json()
        if job["status"] != "running":
            return job
        time.sleep(0.05)
    raise AssertionError(f"rotation {job_id} still running after {timeout}s")


def test_rotation_keeps_reads_working_across_replicas(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, reveal_token: str, make_user: Any
) -> None:
    old = Api(start_service("secrets", secrets_env).url)  # key ring {1}
    new = Api(start_service("secrets", {**secrets_env, "SECRETS_ENCRYPTION_KEY": json.dumps({"1": K1, "2": K2})}).url)
    _, _, viewer = make_user("viewer")
    pairs: dict[str, tuple[str, str]] = {}
    for i in range(60):
        pair = new_pair()
        resp = old.create(admin_token, f"acct{i % 3}", f"key-{i}", *pair)
        assert resp.status_code == 201
        pairs[resp.json()["key_id"]] = (f"acct{i % 3}", *pair)

    # Cross-replica cache coherence: 'new' caches acct0, a write on 'old' must show on 'new'.
    before = {k["key_id"] for k in new.get(viewer, new.keys("acct0")).json()["items"]}
    pair = new_pair()
    extra = old.create(admin_token, "acct0", "late", *pair).json()["key_id"]
    pairs[extra] = ("acct0", *pair)
    deadline = time.monotonic() + 5
    while extra not in {k["key_id"] for k in new.get(viewer, new.keys("acct0")).json()["items"]}:
        assert time.monotonic() < deadline, "replica 'new' kept serving stale metadata"
        time.sleep(0.02)
    assert len(before) == 20
    # A replica with the new ring seals new records under version 2 and reads version 1.
    assert new.get(admin_token, "/v1/keyring").json()["records_by_version"] == {"1": 61}

    started = new.http.post("/v1/rotate", json={"batch_size": 2, "pause_ms": 30}, headers=bearer(admin_token))
    assert started.status_code == 202, started.text
    job_id = started.json()["job_id"]
    assert started.json()["target_version"] == 2 and started.json()["status"] == "running"
    busy = old.http.post("/v1/rotate", json={}, headers=bearer(admin_token))
    assert busy.status_code == 409 and busy.json()["error"] == "rotation_in_progress"

    reads_during, ids = 0, list(pairs)
    i = 0
    while True:
        if new.get(admin_token, f"/v1/rotations/{job_id}").json()["status"] != "running":
            break
        key_id = ids[i % len(ids)]
        account, api_key, private_key = pairs[key_id]
        revealed = new.reveal(reveal_token, account, key_id)
        assert revealed.status_code == 200, revealed.text
        assert (revealed.json()["api_key"], revealed.json()["private_key"]) == (api_key, private_key)
        listed = old.get(viewer, old.keys(account))
        assert listed.status_code == 200 and key_id in {k["key_id"] for k in listed.json()["items"]}
        i += 1
        if new.get(admin_token, f"/v1/rotations/{job_id}").json()["status"] == "running":
            reads_during += 1  # this read happened strictly while the rotation ran
    assert reads_during >= 10, f"only {reads_during} reads overlapped the rotation"

    job = wait_for_job(new, admin_token, job_id)
    assert job["status"] == "completed" and job["records_rotated"] == 61 and job["batches"] == 31
    ring = new.get(admin_token, "/v1/keyring").json()
    assert ring == {"current_version": 2, "versions": [1, 2], "records_by_version": {"2": 61}, "missing_versions": []}
    assert {k["key_version"] for k in old.get(viewer, old.keys("acct1")).json()["items"]} == {2}

    # The replica that lacks version 2 says so instead of failing obscurely.
    some = ids[0]
    stale = old.reveal(reveal_token, pairs[some][0], some)
    assert stale.status_code == 503 and stale.json()["error"] == "key_version_unavailable"
    assert old.get(admin_token, "/v1/keyring").json()["missing_versions"] == [2]

    # A full re-key (new data keys) keeps every secret readable.
    dsn = secrets_env["SECRETS_DATABASE_URL"]
    with psycopg.connect(dsn) as conn:
        before_ct = conn.execute("SELECT ciphertext FROM kraken_keys WHERE key_id = %s", (some,)).fetchone()[0]
    rekey = new.http.post("/v1/rotate", json={"rotate_data_keys": True, "batch_size": 50}, headers=bearer(admin_token))
    assert wait_for_job(new, admin_token, rekey.json()["job_id"])["records_rotated"] == 61
    with psycopg.connect(dsn) as conn:
        after_ct = conn.execute("SELECT ciphertext FROM kraken_keys WHERE key_id = %s", (some,)).fetchone()[0]
    assert after_ct != before_ct
    for key_id in ids[:5]:
        assert new.reveal(reveal_token, pairs[key_id][0], key_id).json()["private_key"] == pairs[key_id][2]
    # Nothing left to do: a plain rotation now touches no record.
    again = new.http.post("/v1/rotate", headers=bearer(admin_token))
    assert wait_for_job(new, admin_token, again.json()["job_id"])["records_rotated"] == 0
    assert len(new.get(admin_token, "/v1/rotations").json()) == 3
    finished = new.audit(admin_token, action="rotation.finish")
    assert len(finished) == 3 and {e["outcome"] for e in finished} == {"success"}
    assert new.get(viewer, "/v1/rotations").status_code == 403
    assert new.http.post("/v1/rotate", headers=bearer(viewer)).status_code == 403


def test_credentials_dir_is_imported_once(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, reveal_token: str
) -> None:
    api_key, private_key = new_pair()
    bad_private = new_pair()[1] + "!!"
    Path(secrets_env["KRAKEN_CREDENTIALS_DIR"], "venue.json").write_text(json.dumps([
        {"account": "sim", "label": "venue-sim", "api_key": api_key, "private_key": private_key,
         "permissions": ["query_funds", "trade", "cancel_orders"]},
        {"account": "sim", "label": "broken", "api_key": new_pair()[0], "private_key": bad_private},
    ]))
    first = start_service("secrets", secrets_env)
    api = Api(first.url)
    items = api.get(admin_token, api.keys("sim")).json()["items"]
    assert [(k["label"], k["created_by"]) for k in items] == [("venue-sim", "system:kraken-credentials-dir")]
    assert api.reveal(reveal_token, "sim", items[0]["key_id"]).json()["private_key"] == private_key
    first.stop()
    second = Api(start_service("secrets", secrets_env).url)  # imports again: nothing new
    assert len(second.get(admin_token, second.keys("sim")).json()["items"]) == 1
    assert [e["action"] for e in second.audit(admin_token, action="key.import")] == ["key.import"]
    assert bad_private not in first.log_path.read_text()


def test_no_secret_reaches_the_log(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, reveal_token: str, make_user: Any
) -> None:
    svc = start_service("secrets", {**secrets_env, "AETHER_LOG_LEVEL": "debug"})
    api = Api(svc.url)
    api_key, private_key = new_pair()
    key_id = api.create(admin_token, "acct", "primary", api_key, private_key).json()["key_id"]
    assert api.reveal(reveal_token, "acct", key_id).json()["private_key"] == private_key
    assert api.reveal(admin_token, "acct", key_id).status_code == 403
    assert api.create(admin_token, "acct", "again", api_key, private_key).status_code == 409
    assert api.create(admin_token, "acct", "bad", api_key + "!", private_key + "%").status_code == 422
    assert api.http.patch(f"{api.keys('acct')}/{key_id}", json={"private_key": private_key},
                          headers=bearer(admin_token)).status_code == 422
    rotated = api.http.post("/v1/rotate", json={"rotate_data_keys": True}, headers=bearer(admin_token))
    wait_for_job(api, admin_token, rotated.json()["job_id"])
    assert api.reveal(reveal_token, "acct", key_id).status_code == 200
    assert api.http.delete(f"{api.keys('acct')}/{key_id}", headers=bearer(admin_token)).status_code == 204
    svc.stop()  # flush and close the log
    log = svc.log_path.read_text()
    assert "kraken key revealed" in log and "reveal denied" in log  # the log did record the events
    for secret in (private_key, api_key, private_key[:24], api_key[:-4], K1, secrets_env["SECRETS_ENCRYPTION_KEY"]):
        assert secret not in log
    # Nor in escaped JSON form.
    assert json.dumps(private_key)[1:-1] not in log


def test_interrupted_rotation_is_abandoned_and_resumed(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, reveal_token: str
) -> None:
    first = start_service("secrets", secrets_env)
    api = Api(first.url)
    pairs = {}
    for i in range(8):
        pair = new_pair()
        pairs[api.create(admin_token, "acct", f"k{i}", *pair).json()["key_id"]] = pair
    first.stop()
    ring2 = {**secrets_env, "SECRETS_ENCRYPTION_KEY": json.dumps({"1": K1, "2": K2})}
    second = start_service("secrets", ring2)
    api = Api(second.url)
    job = api.http.post("/v1/rotate", json={"batch_size": 1, "pause_ms": 300}, headers=bearer(admin_token)).json()
    deadline = time.monotonic() + 10
    while api.get(admin_token, f"/v1/rotations/{job['job_id']}").json()["records_rotated"] < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    second.stop()  # SIGTERM mid-rotation: graceful, the job is recorded as abandoned

    api = Api(start_service("secrets", ring2).url)
    interrupted = api.get(admin_token, f"/v1/rotations/{job['job_id']}").json()
    assert interrupted["status"] == "abandoned" and 2 <= interrupted["records_rotated"] < 8
    assert interrupted["finished_at"] is not None
    mixed = api.get(admin_token, "/v1/keyring").json()["records_by_version"]
    assert set(mixed) == {"1", "2"} and sum(mixed.values()) == 8
    resumed = api.http.post("/v1/rotate", json={"batch_size": 3}, headers=bearer(admin_token)).json()
    done = wait_for_job(api, admin_token, resumed["job_id"])
    assert done["status"] == "completed" and done["records_rotated"] == 8 - interrupted["records_rotated"]
    assert api.get(admin_token, "/v1/keyring").json()["records_by_version"] == {"2": 8}
    for key_id, (api_key, private_key) in pairs.items():
        body = api.reveal(reveal_token, "acct", key_id).json()
        assert (body["api_key"], body["private_key"], body["key_version"]) == (api_key, private_key, 2)


def test_cache_stays_coherent_when_the_change_listener_drops(
    start_service: Any, secrets_env: dict[str, str], admin_token: str, make_user: Any
) -> None:
    writer = Api(start_service("secrets", secrets_env).url)
    reader_svc = start_service("secrets", secrets_env)
    reader = Api(reader_svc.url)
    _, _, viewer = make_user("viewer")

    def labels() -> set[str]:
        return {k["label"] for k in reader.get(viewer, reader.keys("acct")).json()["items"]}

    def eventually(label: str) -> None:
        deadline = time.monotonic() + 5
        while label not in labels():
            assert time.monotonic() < deadline, f"reader never saw {label!r}"
            time.sleep(0.02)

    writer.create(admin_token, "acct", "one", *new_pair())
    eventually("one")
    # Kill every LISTEN connection (the replicas' change listeners) from the server side.
    with psycopg.connect(secrets_env["SECRETS_DATABASE_URL"], autocommit=True) as conn:
        killed = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND query LIKE 'LISTEN%%'"
        ).fetchone()[0]
    assert killed == 2
    writer.create(admin_token, "acct", "two", *new_pair())
    eventually("two")  # served from the database while the listener is down
    deadline = time.monotonic() + 10
    while "change listener reconnected" not in reader_svc.log_path.read_text():
        assert time.monotonic() < deadline, "the change listener did not reconnect"
        time.sleep(0.1)
    assert labels() == {"one", "two"}  # re-cached after the reconnect
    writer.create(admin_token, "acct", "three", *new_pair())
    eventually("three")
