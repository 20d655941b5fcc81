"""Fetching AssetPairs from the venue: every venue failure is a clear 503 or 502 (no servers)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from sandbox.services.kit.errors import ServiceError
from sandbox.services.universe import sync
from sandbox.services.universe.sync import fetch_assetpairs

FIXTURE = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"
URL = "http://venue.test/0/public/AssetPairs"


def fetch(handler) -> object:
    async def call() -> object:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            return await fetch_assetpairs(client, URL, 2.0)

    return asyncio.run(call())


def failure(handler) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        fetch(handler)
    return info.value


def test_a_good_response_is_parsed() -> None:
    seen: list[httpx.Request] = []

    def ok(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, content=FIXTURE.read_bytes())

    parsed = fetch(ok)
    assert len(parsed.pairs) == 6  # type: ignore[attr-defined]
    assert seen[0].method == "GET" and str(seen[0].url) == URL


def test_unreachable_venue_is_503() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    err = failure(refuse)
    assert (err.status, err.code) == (503, "venue_unavailable")
    assert "unreachable" in err.message and err.headers == {"Retry-After": "5"}


def test_slow_venue_is_503() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    err = failure(slow)
    assert err.status == 503 and "did not answer within 2 s" in err.message


@pytest.mark.parametrize(("status", "expected"), [(503, 503), (502, 503), (429, 503), (404, 502), (500, 502)])
def test_http_errors(status: int, expected: int) -> None:
    assert failure(lambda r: httpx.Response(status, text="no")).status == expected


@pytest.mark.parametrize(
    ("errors", "status"),
    [(["EService:Unavailable"], 503), (["EService:Busy"], 503), (["EGeneral:Invalid arguments"], 502)],
)
def test_kraken_error_arrays(errors: list[str], status: int) -> None:
    err = failure(lambda r: httpx.Response(200, json={"error": errors}))
    assert err.status == status and errors[0] in err.message


@pytest.mark.parametrize(
    "content",
    [b"<html>maintenance</html>", b'{"error": [], "result": {}}', b'{"error": [], "result": {"X": {"altname": 1}}}'],
)
def test_unusable_bodies_are_502(content: bytes) -> None:
    err = failure(lambda r: httpx.Response(200, content=content))
    assert (err.status, err.code) == (502, "venue_bad_response")


def test_oversized_bodies_are_502(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sync, "MAX_BODY_BYTES", 1000)
    err = failure(lambda r: httpx.Response(200, content=FIXTURE.read_bytes()))
    assert err.status == 502 and "exceeds 1000 bytes" in err.message
