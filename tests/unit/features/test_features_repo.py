"""The feature store's pure parts: the rendered repository, the venv location, the settings, the report."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sandbox.errors import InvalidInput
from sandbox.features import repo, venv
from sandbox.features.materialize import MaterializeReport
from sandbox.features.settings import FeatureSettings


@pytest.mark.parametrize(("url", "expected"), [
    ("redis://127.0.0.1:6390/0", "127.0.0.1:6390,db=0"),
    ("redis://127.0.0.1:6390/7", "127.0.0.1:6390,db=7"),
    ("redis://localhost", "localhost:6379,db=0"),
    ("redis://:s%40cret@127.0.0.1:6390/1", "127.0.0.1:6390,db=1,password=s@cret"),
])
def test_redis_connection(url: str, expected: str) -> None:
    assert repo.redis_connection(url) == expected


def test_redis_connection_rejects_other_urls() -> None:
    with pytest.raises(InvalidInput):
        repo.redis_connection("http://127.0.0.1:6379")


def test_render_fills_every_placeholder(tmp_path: Path) -> None:
    target = repo.render(tmp_path / "repo", "redis://127.0.0.1:6390/3")
    text = (target / "feature_store.yaml").read_text()
    assert "{" not in text
    config = yaml.safe_load(text)
    assert config["online_store"] == {"type": "redis", "connection_string": "127.0.0.1:6390,db=3"}
    assert config["registry"]["path"] == str(target / "registry.db")
    assert config["offline_store"] == {"type": "file"}
    for name in repo.REPO_FILES:
        assert (target / name).read_bytes() == (repo.source_dir() / name).read_bytes()
    assert (target / "data").is_dir()
    repo.render(target, "redis://127.0.0.1:6391/3")  # idempotent, and follows a new Redis
    assert "127.0.0.1:6391" in (target / "feature_store.yaml").read_text()


def test_feature_repository_declares_the_issue_views() -> None:
    source = (repo.source_dir() / "features.py").read_text()
    for view in ("symbol_quote", "symbol_volatility_1m", "symbol_volume_5m", "account_exposure"):
        assert f'name="{view}"' in source
    pipeline = (repo.source_dir() / "pipeline.py").read_text()
    for table in ("market_trades", "market_top_of_book", "positions"):
        assert f"FROM {table}" in pipeline


def test_venv_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("AETHER_FEAST_VENV", raising=False)
    monkeypatch.setenv("AETHER_SANDBOX_CACHE", str(tmp_path))
    assert venv.venv_dir() == tmp_path / f"feast-{venv.FEAST_VERSION}"
    assert not venv.installed()
    monkeypatch.setenv("AETHER_FEAST_VENV", str(tmp_path / "mine"))
    assert venv.venv_dir() == tmp_path / "mine"
    assert venv.FEAST_REQUIREMENT == f"feast[redis,postgres]=={venv.FEAST_VERSION}"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FEATURES_REDIS_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("FEATURES_HOME", str(tmp_path))
    monkeypatch.setenv("FEATURES_MATERIALIZE_INTERVAL_SECONDS", "30")
    monkeypatch.setenv("AETHER_PORT", "16566")
    settings = FeatureSettings()  # type: ignore[call-arg]
    assert (settings.port, settings.materialize_interval_s, settings.repo_dir) == (16566, 30, tmp_path / "repo")
    assert settings.marketdata_url is None


def test_report_rows() -> None:
    report = MaterializeReport("materialize", {"a": {"rows": 2}, "b": {"rows": 0, "note": "no rows"}}, 1.5)
    assert report.rows == 2 and report.to_dict()["rows"] == 2
