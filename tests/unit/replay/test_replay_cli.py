"""``aether-sandbox fixtures`` and ``record`` argument handling (no servers)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from sandbox.cli.app import app

runner = CliRunner()


def _has(text: str, expected: str) -> bool:
    """``expected`` in ``text``, ignoring where rich wrapped the lines."""
    return "".join(expected.split()) in "".join(text.split())


def test_inspect_json(v2_session: Path) -> None:
    result = runner.invoke(app, ["fixtures", "inspect", str(v2_session), "--json"])
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)
    assert entry["manifest"]["api"] == "v2" and entry["manifest"]["symbols"] == ["BTC/USD", "ETH/USD"]


def test_inspect_table_for_people(v1_session: Path) -> None:
    result = runner.invoke(app, ["fixtures", "inspect", str(v1_session)])
    assert result.exit_code == 0, result.output
    assert "v1.ndjson.gz" in result.stdout and "frames per channel and symbol" in result.stdout


def test_validate_ok_and_invalid(v2_session: Path, tmp_path: Path) -> None:
    ok = runner.invoke(app, ["fixtures", "validate", str(v2_session), "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)[0]["ok"] is True
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"t": 1.0, "dir": "recv", "frame": "{\\"channel\\":\\"heartbeat\\"}"}\nnot json\n')
    result = runner.invoke(app, ["fixtures", "validate", str(bad)])
    assert result.exit_code == 2
    assert _has(result.stderr, f"{bad}:2: line is not JSON")


def test_import_and_generate(tmp_path: Path) -> None:
    capture = tmp_path / "cap.ndjson"
    capture.write_text('{"channel":"heartbeat"}\n')
    result = runner.invoke(app, ["fixtures", "import", str(capture), "--out", str(tmp_path / "cap.ndjson.gz"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["manifest"]["channel_counts"] == {"heartbeat": 1}

    result = runner.invoke(app, ["fixtures", "generate", "--api", "v1", "--symbol", "ETH/USD", "--channel", "book",
                                 "--duration", "2", "--out", str(tmp_path / "g.ndjson.gz"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["manifest"]["depths"] == {"ETH/USD": 10}

    listing = runner.invoke(app, ["fixtures", "generate", "--list", "--json"])
    assert "v2-book10-majors" in json.loads(listing.stdout)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["fixtures", "import", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and _has(missing.stderr, "does not exist")
    preset = runner.invoke(app, ["fixtures", "generate", "--preset", "nope"])
    assert preset.exit_code == 2 and _has(preset.stderr, "unknown preset")
    record = runner.invoke(app, ["record", "--url", "http://x", "--out", str(tmp_path / "r.gz"), "--symbol", "BTC/USD"])
    assert record.exit_code == 2 and _has(record.stderr, "not a ws:// or wss:// URL")
