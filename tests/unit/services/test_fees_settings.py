"""Settings and app wiring of fees-service (no servers: the app is built, not started)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.services.fees.app import create_app
from sandbox.services.fees.settings import FeesSettings
from sandbox.services.kit.settings import KitSettings

BASE = {"FEES_DATABASE_URL": "postgresql://127.0.0.1:1/fees"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FEES_/AETHER_ variable from the developer's shell leaks in."""
    import os

    for name in list(os.environ):
        if name.startswith(("FEES_", "AETHER_", "KRAKEN_")):
            monkeypatch.delenv(name)


def kit(**overrides: object) -> KitSettings:
    values: dict[str, object] = {"service_name": "fees-service", "session_redis_url": "redis://127.0.0.1:1/0",
                                 "auth_url": "http://127.0.0.1:1"}
    values.update(overrides)
    return KitSettings(**values)  # type: ignore[arg-type]


def test_defaults_from_the_spec_names(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**BASE, "FEES_KAFKA_BOOTSTRAP": "127.0.0.1:9092"}.items():
        monkeypatch.setenv(name, value)
    settings = FeesSettings()  # type: ignore[call-arg]
    assert settings.kafka_bootstrap == "127.0.0.1:9092"
    assert (settings.fills_topic, settings.volume_window_days, settings.fee_rounding) == ("oms.fills", 30, "half_up")
    assert settings.kafka_session_timeout_ms == 6000
    assert settings.universe_url is None


def test_database_url_is_required() -> None:
    with pytest.raises(ValidationError, match="FEES_DATABASE_URL"):
        FeesSettings()  # type: ignore[call-arg]


def test_unknown_rounding_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEES_DATABASE_URL", "postgresql://x")
    monkeypatch.setenv("FEES_FEE_ROUNDING", "banker")
    with pytest.raises(ValidationError, match="FEES_FEE_ROUNDING"):
        FeesSettings()  # type: ignore[call-arg]


def test_universe_needs_a_service_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEES_DATABASE_URL", "postgresql://x")
    monkeypatch.setenv("FEES_UNIVERSE_URL", "http://127.0.0.1:2")
    with pytest.raises(ValueError, match="AETHER_SERVICE_CLIENT_ID"):
        create_app(FeesSettings(), kit())  # type: ignore[call-arg]
    app = create_app(FeesSettings(), kit(service_client_id="fees-service", service_client_secret="s"))  # type: ignore[call-arg]
    assert app.title == "fees-service"


def test_every_v1_route_requires_a_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEES_DATABASE_URL", "postgresql://x")
    spec = create_app(FeesSettings(), kit()).openapi()  # type: ignore[call-arg]
    operations = [(path, method, op) for path, ops in spec["paths"].items() for method, op in ops.items()]
    assert {p for p, _, _ in operations} >= {
        "/v1/schedules", "/v1/schedules/{symbol}", "/v1/fills", "/v1/accounts/{account}/volume", "/v1/estimate",
    }
    for path, method, op in operations:
        if path.startswith("/v1/"):
            assert op.get("security"), f"{method.upper()} {path} is not behind the bearer token"
