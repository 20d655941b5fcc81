"""Request models and settings of universe-service (pure validation)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.services.universe.migrations import MIGRATIONS
from sandbox.services.universe.models import DecisionCreate
from sandbox.services.universe.settings import UniverseSettings


def test_decision_reason_is_stripped_and_bounded() -> None:
    assert DecisionCreate(reason="  liquid enough  ").reason == "liquid enough"
    for bad in ("", "  ", "ab", "x" * 501, "ok\x00then", "tab\there", "line\nbreak", "bidi\u202eok"):
        with pytest.raises(ValidationError):
            DecisionCreate(reason=bad)
    assert DecisionCreate(reason="Ünïcode reason ✓").reason == "Ünïcode reason ✓"


def test_decision_rejects_unknown_fields_and_non_strings() -> None:
    with pytest.raises(ValidationError):
        DecisionCreate.model_validate({"reason": "fine reason", "by": "me"})
    with pytest.raises(ValidationError):
        DecisionCreate.model_validate({"reason": 12345})


def test_settings_read_the_spec_env_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIVERSE_DATABASE_URL", "postgresql://u:p@127.0.0.1:5432/universe")
    monkeypatch.setenv("UNIVERSE_VENUE_URL", "http://127.0.0.1:18080/")
    monkeypatch.setenv("KRAKEN_CREDENTIALS_DIR", "/var/run/secrets/kraken")
    s = UniverseSettings()
    assert s.venue_url == "http://127.0.0.1:18080"
    assert s.assetpairs_url == "http://127.0.0.1:18080/0/public/AssetPairs"
    assert str(s.kraken_credentials_dir) == "/var/run/secrets/kraken"
    assert s.sync_on_startup is True and s.sync_timeout_s == 10.0


def test_settings_require_database_and_an_http_venue(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UNIVERSE_DATABASE_URL", raising=False)
    monkeypatch.setenv("UNIVERSE_VENUE_URL", "http://127.0.0.1:1")
    with pytest.raises(ValidationError, match="UNIVERSE_DATABASE_URL"):
        UniverseSettings()
    monkeypatch.setenv("UNIVERSE_DATABASE_URL", "postgresql://x")
    monkeypatch.setenv("UNIVERSE_VENUE_URL", "ftp://venue")
    with pytest.raises(ValidationError, match="http"):
        UniverseSettings()


def test_migrations_are_ordered_and_append_only() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    assert "instrument_audit is append-only" in MIGRATIONS[0].sql
