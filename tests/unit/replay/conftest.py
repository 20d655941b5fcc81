"""Small generated sessions shared by the replay unit tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.replay.generator import GeneratorConfig, generate_file


@pytest.fixture(scope="session")
def v2_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-second v2 session: BTC/USD and ETH/USD, book-10, trade, ticker, ohlc."""
    path = tmp_path_factory.mktemp("replay") / "v2.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD"], duration_s=10, seed=7), path)
    return path


@pytest.fixture(scope="session")
def v1_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-second v1 session: XBT/USD, book-10, trade, ticker."""
    path = tmp_path_factory.mktemp("replay") / "v1.ndjson.gz"
    generate_file(GeneratorConfig(api="v1", symbols=["XBT/USD"], channels=["book", "trade", "ticker"], duration_s=10, seed=8), path)
    return path
