"""Embedded servers for integration tests, started once per test session.

Session fixtures ``postgres``, ``redis_server``, ``nats_server`` and
``kafka_broker`` start lazily (only when a test asks for one), each in its own
directory under one temporary root, and stop at the end of the session. Tests
that stop, restart or break a server start their own through ``start_server``,
which stops whatever it started when the test ends.

Checks shared by the tests are fixtures returning functions (``processes_in``,
``listening_addresses``, ``assert_nothing_left``) rather than imports from this
file, which would depend on which ``conftest`` module Python saw first.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from sandbox.infra.kafka import EmbeddedKafka
from sandbox.infra.nats import EmbeddedNats
from sandbox.infra.ports import free_port, port_in_use
from sandbox.infra.postgres import EmbeddedPostgres
from sandbox.infra.process import ManagedServer
from sandbox.infra.procstats import pid_alive
from sandbox.infra.redis import EmbeddedRedis

S = TypeVar("S", bound=ManagedServer)


@pytest.fixture(scope="session")
def infra_root() -> Iterator[Path]:
    """A temporary root for every server's data directory, removed at the end."""
    # Not tmp_path_factory: its base (/tmp/pytest-of-<user>) is mode 0700, which
    # 'nobody' (PostgreSQL's account when we run as root) cannot traverse.
    root = Path(tempfile.mkdtemp(prefix="aether-it-"))
    root.chmod(0o711)
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def server_dir(infra_root: Path, request: pytest.FixtureRequest) -> Path:
    """A fresh, empty directory for a server started by this test."""
    return Path(tempfile.mkdtemp(prefix=f"{request.node.name[:40]}-", dir=infra_root))


@pytest.fixture(scope="session")
def postgres(infra_root: Path) -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL server shared by the session."""
    with EmbeddedPostgres(infra_root / "postgres", free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def redis_server(infra_root: Path) -> Iterator[EmbeddedRedis]:
    """A redis server (AOF on) shared by the session."""
    with EmbeddedRedis(infra_root / "redis", free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def nats_server(infra_root: Path) -> Iterator[EmbeddedNats]:
    """A NATS server with JetStream shared by the session."""
    with EmbeddedNats(infra_root / "nats", free_port(), free_port()) as server:
        yield server


@pytest.fixture(scope="session")
def kafka_broker(infra_root: Path) -> Iterator[EmbeddedKafka]:
    """A Kafka-compatible broker (Tansu, memory storage) shared by the session."""
    with EmbeddedKafka(infra_root / "kafka", free_port()) as server:
        yield server


@pytest.fixture
def start_server() -> Iterator[Callable[[S], S]]:
    """Factory: ``start_server(server)`` starts it now and stops it when the test ends."""
    started: list[ManagedServer] = []

    def start(server: S) -> S:
        started.append(server)
        return server.start()

    yield start
    for server in reversed(started):
        server.stop()


def _processes_in(directory: Path) -> list[int]:
    """PIDs of live processes whose working directory is inside ``directory``.

    Every embedded server runs with its data dir as working directory (and
    PostgreSQL's workers with pgdata), so this finds anything a server left
    behind even when its PID was never seen by the test.
    """
    found: list[int] = []
    target = str(directory.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:
            continue
        if (cwd == target or cwd.startswith(target + os.sep)) and pid_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a TCP listener on ``port`` (from /proc/net/tcp and tcp6)."""
    addresses: set[str] = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            hex_addr, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A = LISTEN
                continue
            if width == 8:
                raw = bytes.fromhex(hex_addr)[::-1]  # little-endian u32
                addresses.add(".".join(str(b) for b in raw))
            else:
                addresses.add(f"ipv6:{hex_addr}")
    return addresses


def _assert_nothing_left(server: ManagedServer, pid: int | None, ports: dict[str, int]) -> None:
    """Assert a stopped server left no process, no PID file and no port behind."""
    assert server.pid is None
    assert not server.is_running()
    if pid is not None:
        assert not pid_alive(pid), f"{server.name} pid {pid} still alive"
    assert _processes_in(server.data_dir) == [], f"{server.name} left processes behind"
    assert not server.pid_path.exists()
    for role, port in ports.items():
        assert not port_in_use(port), f"{server.name} {role} port {port} still taken"


@pytest.fixture
def processes_in() -> Callable[[Path], list[int]]:
    """Function: live PIDs whose working directory is inside a directory."""
    return _processes_in


@pytest.fixture
def listening_addresses() -> Callable[[int], set[str]]:
    """Function: local addresses with a TCP listener on a port."""
    return _listening_addresses


@pytest.fixture
def assert_nothing_left() -> Callable[[ManagedServer, int | None, dict[str, int]], None]:
    """Function: assert a stopped server left no process, PID file or port."""
    return _assert_nothing_left
