"""Who may write configuration, names, and settings of config-service."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from sandbox.services.config.access import may_write
from sandbox.services.config.models import Key, Namespace
from sandbox.services.config.notify import subject
from sandbox.services.config.settings import ConfigSettings
from sandbox.services.kit.auth import Principal


def _p(roles: tuple[str, ...], kind: str = "user", scopes: tuple[str, ...] = ()) -> Principal:
    return Principal("who", roles, "sid", kind, scopes)


def test_writers() -> None:
    assert may_write(_p(("admin",)))
    assert may_write(_p(("service",), "service", ("config:write",)))
    assert not may_write(_p(("service",), "service", ("config:read",)))
    assert not may_write(_p(("trader", "risk-officer")))
    assert not may_write(_p(("viewer",), "user", ("config:write",)))  # the scope counts for service accounts only


@pytest.mark.parametrize("name", ["risk", "a", "oms-v2", "x_1", "a" * 63])
def test_valid_namespaces(name: str) -> None:
    TypeAdapter(Namespace).validate_python(name)
    assert subject(name).count(".") == 2  # one subject token


@pytest.mark.parametrize("name", ["", "Risk", "1risk", "a.b", "a/b", "a b", "a" * 64, "é", "..", "a*", "a>"])
def test_invalid_namespaces(name: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Namespace).validate_python(name)


@pytest.mark.parametrize("name", ["max_notional", "limits.max", "A-1", "0", "k" * 128])
def test_valid_keys(name: str) -> None:
    TypeAdapter(Key).validate_python(name)


@pytest.mark.parametrize("name", ["", ".", "..", ".hidden", "a/b", "a\\b", "k" * 129, "a b", "a\x00"])
def test_invalid_keys(name: str) -> None:
    with pytest.raises(ValidationError):
        TypeAdapter(Key).validate_python(name)


def test_settings_use_spec_names_and_require_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONFIG_DATABASE_URL", "CONFIG_NATS_URL", "CONFIG_CACHE_DIR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ValidationError) as info:
        ConfigSettings()
    missing = {err["loc"][0] for err in info.value.errors()}
    assert missing == {"CONFIG_DATABASE_URL", "CONFIG_NATS_URL", "CONFIG_CACHE_DIR"}
    monkeypatch.setenv("CONFIG_DATABASE_URL", "postgresql://u@127.0.0.1/config")
    monkeypatch.setenv("CONFIG_NATS_URL", "nats://127.0.0.1:4222")
    monkeypatch.setenv("CONFIG_CACHE_DIR", str(tmp_path))
    settings = ConfigSettings()
    assert settings.cache_dir == tmp_path and settings.max_value_bytes == 65_536


def test_settings_names_match_the_platform_spec() -> None:
    from sandbox.spec.loader import default_spec

    component = default_spec().component("config-service")
    declared = {f.validation_alias for f in ConfigSettings.model_fields.values()}
    assert set(component.env) <= declared
