"""What every embedded server promises about its lifecycle.

Start then stop leaves no process and no port; a start that fails (port taken,
process exiting, never ready) raises a typed error and leaves nothing behind;
a server that ignores its stop signal is killed together with its workers.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from sandbox.infra import process as process_module
from sandbox.infra.errors import InfraStartError, PortInUse, ReadinessTimeout
from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.nats import EmbeddedNats
from sandbox.infra.ports import free_port
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.process import ManagedServer
from sandbox.infra.procstats import pid_alive, process_tree
from sandbox.infra.redis import EmbeddedRedis

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _postgres(d: Path, cls: type = EmbeddedPostgres) -> ManagedServer:
    return cls(d, free_port())


def _redis(d: Path, cls: type = EmbeddedRedis) -> ManagedServer:
    return cls(d, free_port())


def _nats(d: Path, cls: type = EmbeddedNats) -> ManagedServer:
    return cls(d, free_port(), free_port())


def _kafka(d: Path, cls: type = EmbeddedKafka) -> ManagedServer:
    return cls(d, free_port())


FACTORIES: dict[str, tuple[type[ManagedServer], Callable[..., ManagedServer]]] = {
    "postgres": (EmbeddedPostgres, _postgres),
    "redis": (EmbeddedRedis, _redis),
    "nats": (EmbeddedNats, _nats),
    "kafka": (EmbeddedKafka, _kafka),
}
KINDS = list(FACTORIES)


def _make(kind: str, directory: Path, **overrides: object) -> ManagedServer:
    """Build a server of ``kind``; ``overrides`` become class attributes of a throwaway subclass."""
    base, factory = FACTORIES[kind]
    cls = type(f"Test{base.__name__}", (base,), dict(overrides)) if overrides else base
    return factory(directory, cls)


def _hold(port: int, *, listen: bool = True) -> socket.socket:
    """Take ``port``; without ``listen`` the port is bound (servers cannot bind it) but refuses connections."""
    holder = socket.socket()
    if listen:
        # As real servers do: otherwise the TIME_WAIT left by accepted
        # connections keeps the port unbindable for a minute after close.
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.bind(("127.0.0.1", port))
    if listen:
        holder.listen()
    return holder


def _answer_pong(listener: socket.socket, stop: threading.Event) -> None:
    """Act as a stranger on the port that answers every PING like a healthy redis."""
    listener.settimeout(0.05)
    while not stop.is_set():
        try:
            conn, _ = listener.accept()
        except OSError:
            continue
        with conn:
            conn.recv(64)
            conn.sendall(b"+PONG\r\n")


@pytest.mark.parametrize("kind", KINDS)
def test_stop_leaves_no_process_and_frees_the_ports(kind: str, server_dir: Path, assert_nothing_left) -> None:
    with _make(kind, server_dir) as server:
        pid, ports = server.pid, server.ports
        assert pid is not None and pid_alive(pid)
        assert server.pid_path.read_text().strip() == str(pid)
        assert server.log_path.is_file()
        memory = server.memory()
        assert memory is not None and memory.rss_bytes > 0
    assert_nothing_left(server, pid, ports)
    server.stop()  # idempotent


@pytest.mark.parametrize("kind", KINDS)
def test_port_taken_is_refused_before_launch(kind: str, server_dir: Path, processes_in) -> None:
    server = _make(kind, server_dir)
    with _hold(next(iter(server.ports.values()))), pytest.raises(PortInUse) as caught:
        server.start()
    assert caught.value.exit_code == 3 and "in use" in str(caught.value)
    assert server.pid is None and processes_in(server_dir) == []


@pytest.mark.parametrize("kind", KINDS)
def test_process_exiting_during_start_is_reported_and_cleaned_up(
    kind: str, server_dir: Path, monkeypatch: pytest.MonkeyPatch, assert_nothing_left
) -> None:
    # Skip the pre-launch port check so the binary itself meets the taken
    # port, as when another process grabs it between check and bind.
    monkeypatch.setattr(process_module, "ensure_ports_free", lambda *a, **k: None)
    server = _make(kind, server_dir)
    ports = server.ports
    with _hold(next(iter(ports.values())), listen=False):
        with pytest.raises(InfraStartError) as caught:
            server.start()
        assert server.pid is None and not server.pid_path.exists()
    error = caught.value
    assert error.exit_code == 4 and "exited during start-up" in str(error)
    assert error.log_lines, "the error carries the server's last log lines"
    assert "another process took one of the ports" in error.hint
    assert_nothing_left(server, None, ports)


@pytest.mark.parametrize("kind", KINDS)
def test_never_ready_times_out_and_cleans_up(kind: str, server_dir: Path, assert_nothing_left) -> None:
    server = _make(kind, server_dir, ready=lambda self: "forced: never ready")
    server.start_timeout = 0.5
    with pytest.raises(ReadinessTimeout) as caught:
        server.start()
    assert "forced: never ready" in str(caught.value)
    assert caught.value.log_lines, "the timeout carries the server's last log lines"
    assert_nothing_left(server, None, server.ports)


@pytest.mark.parametrize("kind", KINDS)
def test_ignored_stop_signal_escalates_to_kill_of_all_workers(
    kind: str, server_dir: Path, assert_nothing_left
) -> None:
    # SIGCONT does not stop anything: the server "ignores" the request to stop.
    server = _make(kind, server_dir, stop_signal=signal.SIGCONT)
    server.stop_timeout = 0.3
    server.start()
    pid, ports = server.pid, server.ports
    assert pid is not None
    tree = process_tree(pid)
    server.stop()
    assert [p.pid for p in tree if pid_alive(p.pid)] == []
    assert_nothing_left(server, pid, ports)


def test_a_stranger_answering_on_the_port_is_not_taken_for_our_server(
    server_dir: Path, monkeypatch: pytest.MonkeyPatch, assert_nothing_left
) -> None:
    monkeypatch.setattr(process_module, "ensure_ports_free", lambda *a, **k: None)
    server = _make("redis", server_dir)
    stop = threading.Event()
    with _hold(server.port) as stranger:
        answering = threading.Thread(target=_answer_pong, args=(stranger, stop), daemon=True)
        answering.start()
        try:
            with pytest.raises(InfraStartError, match="exited during start-up"):
                server.start()
        finally:
            stop.set()
            answering.join()
    assert_nothing_left(server, None, server.ports)


def test_a_crash_is_seen_with_its_exit_status(server_dir: Path, assert_nothing_left) -> None:
    server = _make("redis", server_dir)
    server.start()
    pid, ports = server.pid, server.ports
    assert pid is not None and server.exit_status is None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while server.is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not server.is_running()
    assert server.exit_status == -signal.SIGKILL
    assert server.pid == pid, "the crashed process stays ours until stop() reaps it"
    server.stop()
    assert_nothing_left(server, pid, ports)


def test_context_manager_stops_when_the_body_raises(server_dir: Path, assert_nothing_left) -> None:
    server = _make("redis", server_dir)
    with pytest.raises(RuntimeError), server:
        pid, ports = server.pid, server.ports
        raise RuntimeError("test body failed")
    assert_nothing_left(server, pid, ports)
