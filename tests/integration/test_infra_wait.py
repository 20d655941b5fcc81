"""The wait strategy and the port helpers (no server needed)."""

from __future__ import annotations

import socket

import pytest

from sandbox.errors import EnvironmentProblem, SandboxError, StartFailed
from sandbox.infra.errors import PortInUse, ReadinessTimeout
from sandbox.infra.ports import ensure_ports_free, free_port, port_in_use
from sandbox.infra.wait import wait_until

pytestmark = pytest.mark.integration


def test_wait_until_returns_once_check_passes() -> None:
    calls = iter([False, "starting", True])
    waited = wait_until(lambda: next(calls), timeout=5, interval=0.001, what="thing")
    assert 0 <= waited < 1


def test_wait_until_times_out_with_last_reason_and_log_lines() -> None:
    with pytest.raises(ReadinessTimeout) as caught:
        wait_until(
            lambda: "port closed",
            timeout=0.05,
            interval=0.01,
            what="demo server",
            log_tail=lambda: ["line one", "FATAL: broken"],
        )
    error = caught.value
    assert isinstance(error, StartFailed) and isinstance(error, SandboxError)
    assert error.exit_code == 4
    assert "demo server not ready after" in str(error) and "port closed" in str(error)
    assert error.log_lines == ["line one", "FATAL: broken"]
    assert "FATAL: broken" in error.hint


def test_wait_until_treats_oserror_as_not_yet_and_other_errors_as_fatal() -> None:
    def refused() -> bool:
        raise ConnectionRefusedError("refused")

    with pytest.raises(ReadinessTimeout, match="refused"):
        wait_until(refused, timeout=0.03, interval=0.01, what="x")

    def broken() -> bool:
        raise ValueError("fatal")

    with pytest.raises(ValueError):
        wait_until(broken, timeout=5, interval=0.01, what="x")


def test_free_port_is_free_and_port_in_use_sees_a_listener() -> None:
    port = free_port()
    assert not port_in_use(port)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert port_in_use(port)
        with pytest.raises(PortInUse) as caught:
            ensure_ports_free({"client": port}, what="demo")
    assert isinstance(caught.value, EnvironmentProblem)
    assert caught.value.port == port and "ss -ltnp" in caught.value.hint
    assert not port_in_use(port)
