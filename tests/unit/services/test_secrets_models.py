"""Request validation of secrets-service: bounds, base64, and no secret echoed anywhere (no servers)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from sandbox.services.kit.errors import install_error_handlers
from sandbox.services.secrets.importer import read_entries
from sandbox.services.secrets.models import KrakenKeyCreate, KrakenKeyUpdate, Permission
from sandbox.services.secrets.runtime import AccountView
from sandbox.services.secrets.store import fingerprint, parse_payload, payload_bytes, public

API_KEY = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdEFGHijklMNOPqrst"
PRIVATE = base64.b64encode(os.urandom(64)).decode()


def body(**over: object) -> dict[str, object]:
    return {"label": "main", "api_key": API_KEY, "private_key": PRIVATE, "permissions": ["trade", "query_funds"]} | over


def test_valid_create_hides_secrets_in_repr() -> None:
    m = KrakenKeyCreate.model_validate(body())
    assert m.api_key.get_secret_value() == API_KEY and m.private_key.get_secret_value() == PRIVATE
    assert API_KEY not in repr(m) and PRIVATE not in repr(m) and PRIVATE not in str(m)
    assert m.permissions == [Permission.query_funds, Permission.trade]  # sorted


@pytest.mark.parametrize(
    "over",
    [
        {"private_key": PRIVATE + "!"},  # not base64
        {"private_key": PRIVATE[:-4] + "A==="},  # bad padding
        {"private_key": base64.b64encode(b"x" * 300).decode()},  # too long
        {"private_key": base64.b64encode(b"x" * 10).decode()},  # too short
        {"api_key": "short"},
        {"api_key": API_KEY + " "},
        {"api_key": 12345},
        {"permissions": ["trade", "trade"]},
        {"permissions": ["fly"]},
        {"label": ""},
        {"label": "x" * 65},
        {"label": "tab\there"},
        {"extra": 1},
    ],
)
def test_invalid_create_is_rejected(over: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KrakenKeyCreate.model_validate(body(**over))


def test_private_key_decoded_length_message_does_not_echo_it() -> None:
    KrakenKeyCreate.model_validate(body(private_key=base64.b64encode(b"0123456789abcdef").decode()))
    unpadded = "Zm9vYmFy" * 3 + "Q"  # matches the character pattern, is not valid base64
    with pytest.raises(ValidationError) as info:
        KrakenKeyCreate.model_validate(body(private_key=unpadded))
    assert "standard base64" in str(info.value) and unpadded not in str(info.value)
    small = base64.b64encode(b"0123456789abcde").decode() + "AAAA"  # 18 bytes: fine
    KrakenKeyCreate.model_validate(body(private_key=small))


def test_update_model() -> None:
    assert KrakenKeyUpdate.model_validate({"permissions": ["withdraw", "trade"]}).permissions == [
        Permission.trade, Permission.withdraw]
    with pytest.raises(ValidationError):
        KrakenKeyUpdate.model_validate({"api_key": API_KEY})


def test_validation_error_bodies_never_echo_secret_input() -> None:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/k")
    async def create(b: KrakenKeyCreate) -> dict[str, str]:
        return {"ok": "yes"}

    async def post_all(payloads: list[dict[str, object]]) -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return [await client.post("/k", json=p) for p in payloads]

    bad_private = PRIVATE + "@@"
    payloads = [body(private_key=bad_private), body(api_key=API_KEY + "%%", private_key=bad_private),
                body(private_key=bad_private, permissions=["nope"], extra=API_KEY)]
    for resp in asyncio.run(post_all(payloads)):
        assert resp.status_code == 422
        text = resp.text
        assert bad_private not in text and PRIVATE not in text and API_KEY not in text
        assert resp.json()["error"] == "validation_error"


def test_payload_round_trip_and_metadata_carry_no_secret() -> None:
    assert parse_payload(payload_bytes(API_KEY, PRIVATE)) == (API_KEY, PRIVATE)
    import datetime as dt
    import hashlib
    import uuid

    now = dt.datetime.now(dt.UTC)
    row = {"key_id": uuid.uuid4(), "account": "acct", "label": "main", "permissions": ["trade"],
           "api_key_last4": API_KEY[-4:], "api_key_sha256": hashlib.sha256(API_KEY.encode()).digest(),
           "key_version": 1, "created_by": "admin", "created_at": now, "updated_at": now}
    doc = public(row)
    assert doc["fingerprint"] == fingerprint(row["api_key_sha256"]) and len(doc["fingerprint"]) == len("sha256:") + 16
    view = AccountView.build("acct", [doc])
    for blob in (view.list_json, view.permissions_json, *view.key_json.values()):
        assert API_KEY.encode() not in blob and PRIVATE.encode() not in blob
    assert json.loads(view.permissions_json)["permissions"] == ["trade"]


def test_import_file_problems_are_reported_without_values(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad_private = PRIVATE + "!!"
    (tmp_path / "keys.json").write_text(json.dumps([
        {"account": "acct", **body()},
        {"account": "acct", **body(label="second", private_key=bad_private)},
    ]))
    with caplog.at_level("WARNING"):
        entries, invalid = read_entries(tmp_path / "keys.json")
    assert len(entries) == 1 and invalid == 1
    logged = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert bad_private not in logged and "private_key" in logged
    (tmp_path / "broken.json").write_text("{" + PRIVATE)
    with caplog.at_level("WARNING"):
        assert read_entries(tmp_path / "broken.json") == ([], 1)
    assert PRIVATE not in caplog.text + " ".join(str(r.__dict__) for r in caplog.records)


def test_settings_reject_a_bad_key_ring_without_printing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from sandbox.services.secrets.settings import SecretsSettings

    weak = base64.b64encode(b"only-sixteen-byt").decode()
    monkeypatch.setenv("SECRETS_DATABASE_URL", "postgresql://127.0.0.1/secrets")
    monkeypatch.setenv("SECRETS_ENCRYPTION_KEY", json.dumps({"1": weak}))
    with pytest.raises(ValidationError) as info:
        SecretsSettings()
    assert "expected 32" in str(info.value) and weak not in str(info.value)
    good = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("SECRETS_ENCRYPTION_KEY", good)
    settings = SecretsSettings()
    assert settings.key_ring().current_version == 1 and good not in repr(settings)
    monkeypatch.delenv("SECRETS_ENCRYPTION_KEY")
    with pytest.raises(ValidationError):
        SecretsSettings()  # no default for the master key
