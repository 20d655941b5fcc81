"""The venue simulator's public REST API (in-process ASGI, no server)."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from sandbox.errors import InvalidInput
from sandbox.venue.public_rest import AssetPairsCatalog, create_public_app, dumps_exact

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "kraken" / "assetpairs.json"
PAIRS = {"XXBTZUSD", "XETHZUSD", "SOLUSD", "XXRPZUSD", "XETHXXBT", "ADAEUR"}


def get(app, path: str, **params: str) -> httpx.Response:
    """One request through the ASGI app."""
    import asyncio

    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://venue") as client:
            return await client.get(path, params=params)

    return asyncio.run(call())


@pytest.fixture(scope="module")
def app():
    return create_public_app(FIXTURE)


def test_assetpairs_serves_the_fixture_byte_exact_in_values(app) -> None:
    resp = get(app, "/0/public/AssetPairs")
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/json"
    served = json.loads(resp.content, parse_float=Decimal)
    original = json.loads(FIXTURE.read_bytes(), parse_float=Decimal)
    assert served == original
    assert served["error"] == [] and set(served["result"]) == PAIRS
    # raw tokens survive: 0.20 and 0.00 are not turned into 0.2 / 0.0
    assert b"[250000,0.20]" in resp.content and b"[10000000,0.00]" in resp.content
    assert b'"ordermin":"0.0001"' in resp.content


@pytest.mark.parametrize(
    ("pair", "expected"),
    [
        ("XXBTZUSD", ["XXBTZUSD"]),
        ("XBTUSD", ["XXBTZUSD"]),
        ("xbtusd", ["XXBTZUSD"]),
        ("XBT/USD", ["XXBTZUSD"]),
        ("ETHUSD,SOLUSD", ["XETHZUSD", "SOLUSD"]),
        ("ETHXBT, ADA/EUR", ["XETHXXBT", "ADAEUR"]),
        ("XBTUSD,XXBTZUSD", ["XXBTZUSD"]),
    ],
)
def test_pair_filter_accepts_keys_altnames_and_wsnames(app, pair: str, expected: list[str]) -> None:
    body = get(app, "/0/public/AssetPairs", pair=pair).json()
    assert body["error"] == []
    assert list(body["result"]) == expected


def test_unknown_pair_fails_the_whole_request_in_kraken_format(app) -> None:
    resp = get(app, "/0/public/AssetPairs", pair="XBTUSD,NOPE")
    assert resp.status_code == 200  # Kraken reports API errors in the body
    assert resp.json() == {"error": ["EQuery:Unknown asset pair"]}


@pytest.mark.parametrize(
    ("info", "fields"),
    [
        ("leverage", {"leverage_buy", "leverage_sell"}),
        ("fees", {"fees", "fees_maker", "fee_volume_currency"}),
        ("margin", {"margin_call", "margin_stop"}),
    ],
)
def test_info_selects_kraken_field_groups(app, info: str, fields: set[str]) -> None:
    body = json.loads(get(app, "/0/public/AssetPairs", pair="XBTUSD", info=info).content, parse_float=Decimal)
    assert set(body["result"]["XXBTZUSD"]) == fields
    if info == "fees":
        assert body["result"]["XXBTZUSD"]["fees"][0] == [0, Decimal("0.26")]


def test_info_info_is_everything_and_unknown_info_is_an_error(app) -> None:
    full = get(app, "/0/public/AssetPairs", pair="SOLUSD", info="info").json()["result"]["SOLUSD"]
    assert {"altname", "wsname", "ordermin", "costmin", "tick_size", "fees", "fees_maker"} <= set(full)
    assert get(app, "/0/public/AssetPairs", info="bogus").json() == {"error": ["EGeneral:Invalid arguments:info"]}


def test_system_status_time_and_healthz(app) -> None:
    status = get(app, "/0/public/SystemStatus").json()
    assert status["error"] == [] and status["result"]["status"] == "online"
    assert status["result"]["timestamp"].endswith("Z")
    now = time.time()
    server = get(app, "/0/public/Time").json()["result"]
    assert abs(server["unixtime"] - now) < 5
    assert server["rfc1123"].endswith("+0000")
    assert get(app, "/healthz").json() == {"status": "ok", "pairs": 6}


def test_system_status_is_configurable() -> None:
    app = create_public_app(FIXTURE, system_status="maintenance")
    assert get(app, "/0/public/SystemStatus").json()["result"]["status"] == "maintenance"
    app.state.system_status = "post_only"
    assert get(app, "/0/public/SystemStatus").json()["result"]["status"] == "post_only"
    with pytest.raises(InvalidInput):
        create_public_app(FIXTURE, system_status="sleeping")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("not json", "not valid JSON"),
        ('{"error": [], "result": []}', "shape"),
        ('{"error": ["EService:Unavailable"], "result": {}}', "carries errors"),
        ('{"error": [], "result": {"X": 1}}', "must be objects"),
    ],
)
def test_broken_fixtures_fail_at_load_time(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "pairs.json"
    path.write_text(text)
    with pytest.raises(InvalidInput, match=problem):
        create_public_app(path)


def test_missing_fixture_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="cannot read AssetPairs fixture"):
        AssetPairsCatalog.from_file(tmp_path / "absent.json")


def test_dumps_exact_keeps_decimal_tokens() -> None:
    doc = {"a": [Decimal("0.00"), Decimal("1E+2"), 3, "x\"y", None, True], "b": {"c": Decimal("0.00005")}}
    text = dumps_exact(doc)
    assert text == b'{"a":[0.00,1E+2,3,"x\\"y",null,true],"b":{"c":0.00005}}'
    assert json.loads(text, parse_float=Decimal) == doc
    with pytest.raises(ValueError):
        dumps_exact({"x": Decimal("NaN")})


def test_venue_main_rejects_a_broken_fixture(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from sandbox.venue.__main__ import main

    path = tmp_path / "broken.json"
    path.write_text("[]")
    assert main(["--assetpairs", str(path), "--port", "0"]) == 2
    assert "error:" in capsys.readouterr().err
