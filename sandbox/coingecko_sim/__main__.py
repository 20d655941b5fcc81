"""``python -m sandbox.coingecko_sim``: the simulator on ``AETHER_HOST:AETHER_PORT``.

Settings (environment): ``COINGECKO_SIM_FIXTURES`` (default: the project's
``fixtures/coingecko``), ``COINGECKO_SIM_FAULTS`` (faults queued at start, e.g.
``429x2@/api/v3/coins/markets,500``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sandbox.coingecko_sim.generate import DEFAULT_DIR


class SimSettings(BaseSettings):
    """The simulator's settings, read once at start."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    fixtures: Path = Field(default=DEFAULT_DIR, validation_alias="COINGECKO_SIM_FIXTURES")
    faults: str = Field(default="", validation_alias="COINGECKO_SIM_FAULTS")
    host: str = Field(default="127.0.0.1", validation_alias="AETHER_HOST")
    port: int = Field(default=8000, validation_alias="AETHER_PORT")


def main() -> None:
    """Serve until stopped."""
    import uvicorn

    from sandbox.coingecko_sim.app import create_app
    from sandbox.coingecko_sim.faults import FaultPlan, parse_faults

    settings = SimSettings()
    app = create_app(settings.fixtures, FaultPlan(parse_faults(settings.faults)))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
