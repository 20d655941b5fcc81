"""policy-service reference loading without servers: universe paging, SystemStatus, credentials, settings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from sandbox.services.policy.credentials import load_credentials
from sandbox.services.policy.reference import ReferenceData, UpstreamError, fetch_listing, fetch_system_status
from sandbox.services.policy.settings import PolicySettings


def item(n: int, **overrides: Any) -> dict[str, Any]:
    doc = {"symbol": f"C{n}/USD", "altname": f"C{n}USD", "pair_key": f"C{n}USD", "base": f"C{n}", "quote": "USD",
           "venue_quote": "ZUSD", "ordermin": "1", "costmin": "0.5", "tick_size": "0.01", "pair_decimals": 2,
           "lot_decimals": 8, "status": "online", "listed": True, "approval": {"state": "approved"}}
    doc.update(overrides)
    return doc


class FakeUniverse:
    """Serves ``items`` in pages like universe-service's GET /v1/instruments."""

    def __init__(self, items: list[Any], page: int = 2) -> None:
        self.items, self.page, self.calls = items, page, 0
        self.status, self.body = 200, None
        self.error: Exception | None = None

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        self.calls += 1
        if self.error is not None:
            raise self.error
        if self.body is not None:
            return httpx.Response(self.status, content=self.body)
        offset = kwargs["params"]["offset"]
        chunk = self.items[offset:offset + self.page]
        return httpx.Response(self.status, json={"items": chunk, "total": len(self.items), "limit": self.page,
                                                 "offset": offset})


def test_listing_pages_through_everything() -> None:
    universe = FakeUniverse([item(i) for i in range(5)])
    items, digest = asyncio.run(fetch_listing(universe, 1))
    assert [i["symbol"] for i in items] == [f"C{i}/USD" for i in range(5)] and universe.calls == 3
    assert asyncio.run(fetch_listing(universe, 1))[1] == digest


@pytest.mark.parametrize(("status", "body", "error"), [
    (500, b"{}", "HTTP 500"), (200, b"not json", "invalid JSON"), (200, b"[]", "unexpected"),
    (200, b'{"items": 1, "total": 1}', "unexpected"),
])
def test_listing_errors(status: int, body: bytes, error: str) -> None:
    universe = FakeUniverse([])
    universe.status, universe.body = status, body
    with pytest.raises(UpstreamError, match=error):
        asyncio.run(fetch_listing(universe, 1))


def test_listing_transport_errors() -> None:
    universe = FakeUniverse([])
    universe.error = httpx.ConnectError("refused")
    with pytest.raises(UpstreamError, match="unreachable: ConnectError"):
        asyncio.run(fetch_listing(universe, 1))


def test_reference_keeps_last_good_data_and_skips_bad_items() -> None:
    async def go() -> None:
        universe = FakeUniverse([item(1), item(2, tick_size="zero")])
        ref = ReferenceData(universe=universe, venue=None, venue_url=None, timeout_s=1,
                            on_refresh=lambda s, o: seen.append((s, o)))
        assert not ref.loaded
        assert await ref.refresh_instruments() is True
        assert len(ref.snapshot) == 1 and ref.snapshot.skipped[0][0] == "C2USD"
        assert await ref.refresh_instruments() is False  # same bytes: not parsed again
        universe.error = httpx.ReadTimeout("slow")
        with pytest.raises(UpstreamError):
            await ref.refresh_instruments()
        assert len(ref.snapshot) == 1 and ref.loaded and "unreachable" in (ref.error or "")
        assert await ref.refresh_venue() is None  # no venue configured

    seen: list[tuple[str, str]] = []
    asyncio.run(go())
    assert seen == [("universe", "changed"), ("universe", "unchanged"), ("universe", "failed")]


class FakeVenue:
    def __init__(self, doc: Any) -> None:
        self.doc = doc

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        assert url == "http://venue/0/public/SystemStatus"
        return httpx.Response(200, content=json.dumps(self.doc).encode())


@pytest.mark.parametrize("status", ["online", "maintenance", "cancel_only", "post_only"])
def test_system_status(status: str) -> None:
    doc = {"error": [], "result": {"status": status, "timestamp": "2026-01-01T00:00:00Z"}}
    assert asyncio.run(fetch_system_status(FakeVenue(doc), "http://venue", 1)) == status


@pytest.mark.parametrize("doc", [{"error": ["EService:Unavailable"]}, {"error": [], "result": {"status": "weird"}},
                                 {"error": [], "result": []}, []])
def test_system_status_errors(doc: Any) -> None:
    with pytest.raises(UpstreamError):
        asyncio.run(fetch_system_status(FakeVenue(doc), "http://venue", 1))


def test_credentials_are_read_and_masked(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "api_key").write_text("KEY-123\n")
    (tmp_path / "api_secret").write_text("c2VjcmV0")
    creds = load_credentials(tmp_path)
    assert creds.state == "loaded" and creds.loaded
    assert creds.api_key is not None and creds.api_key.get_secret_value() == "KEY-123"
    assert "KEY-123" not in repr(creds) and "c2VjcmV0" not in repr(creds)
    assert "KEY-123" not in caplog.text
    (tmp_path / "api_secret").unlink()
    assert load_credentials(tmp_path).state == "absent"
    assert load_credentials(None).state == "not configured"


def test_settings_read_the_documented_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {"POLICY_DATABASE_URL": "postgresql://x/policy", "POLICY_UNIVERSE_URL": "http://u:1/",
                        "POLICY_SECRETS_URL": "http://s:2", "KRAKEN_CREDENTIALS_DIR": "/var/run/secrets/kraken",
                        "POLICY_PERMISSIONS_TTL_S": "2.5"}.items():
        monkeypatch.setenv(name, value)
    settings = PolicySettings()  # type: ignore[call-arg]
    assert (settings.universe_url, settings.secrets_url, settings.venue_url) == ("http://u:1", "http://s:2", None)
    assert settings.permissions_ttl_s == 2.5 and str(settings.kraken_credentials_dir) == "/var/run/secrets/kraken"
    monkeypatch.setenv("POLICY_VENUE_URL", "ftp://venue")
    with pytest.raises(ValidationError):
        PolicySettings()  # type: ignore[call-arg]
