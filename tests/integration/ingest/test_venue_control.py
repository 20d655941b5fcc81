"""The venue's replay control over HTTP (FastAPI router in-process, WebSocket server on a loopback port)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from sandbox.infra.ports import free_port
from sandbox.venue.control import ReplayController, create_app

pytestmark = pytest.mark.integration


@pytest.fixture
def client(tmp_path: Path):
    controller = ReplayController("127.0.0.1", free_port(), fixtures_dir=tmp_path)
    with TestClient(create_app(controller)) as test_client:
        yield test_client


def test_idle_until_a_session_is_loaded(client: TestClient) -> None:
    assert client.get("/admin/replay").json()["state"] == "idle"
    assert client.post("/admin/replay/start").status_code == 409


def test_errors(client: TestClient, tmp_path: Path) -> None:
    assert client.post("/admin/replay", json={"speed": 2}).status_code == 400
    missing = client.post("/admin/replay", json={"session": "nope"})
    assert missing.status_code == 404 and "no session" in missing.json()["error"]
    broken = tmp_path / "broken.ndjson"
    broken.write_text(json.dumps({"t": 1.0, "dir": "recv", "frame": '{"channel":"book","type":"snapshot","data":[{"symbol":"A/B","bids":[{"price":1.0,"qty":1.0}],"asks":[],"checksum":1}]}'}) + "\n{half\n")
    answer = client.post("/admin/replay", json={"session": str(broken)})
    assert answer.status_code == 422
    assert any(p.startswith(f"{broken}:2:") for p in answer.json()["problems"])
    assert client.get("/admin/replay/sends", params={"conn": 5}).status_code == 404


def test_load_then_start(client: TestClient, tmp_path: Path) -> None:
    from sandbox.replay.generator import GeneratorConfig, generate_file

    path = tmp_path / "s.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD"], channels=["book", "trade"], duration_s=5, seed=3), path)
    loaded = client.post("/admin/replay", json={"session": str(path), "max": True, "start": "manual", "symbols": ["BTC/USD"]})
    assert loaded.status_code == 200, loaded.text
    body = loaded.json()
    assert body["state"] == "waiting" and body["ws_path"] == "/v2"
    assert body["replay"]["symbols"] == ["BTC/USD"] and body["replay"]["speed"] is None
    assert body["replay"]["depths"] == {"BTC/USD": 10}
    wrong = client.post("/admin/replay", json={"session": str(path), "symbols": ["ETH/USD"]})
    assert wrong.status_code == 400 and "not in s.ndjson.gz" in wrong.json()["error"]
    started = client.post("/admin/replay/start")
    assert started.status_code == 200 and started.json()["state"] in ("playing", "finished")
