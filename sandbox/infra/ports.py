"""Loopback port helpers: pick a free port, tell whether one is taken."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import random
import socket
import tempfile
import time
from collections import deque
from collections.abc import Iterator, Mapping
from pathlib import Path

from sandbox.infra.errors import PortInUse

#: Every embedded server binds here and nowhere else (a sandbox must not be
#: reachable from the LAN).
LOOPBACK = "127.0.0.1"


#: Where :func:`free_port` picks from: above the sandbox's fixed host ports (14222-19092) and below the
#: kernel's ephemeral range (where it is wide enough).
PICK_FROM = 20_000
_MIN_SPAN = 2_000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: A port handed out is not handed out again, by any process of this user, for this long (the caller's
#: server binds it meanwhile, or never will).
HOLD_S = 600.0
_random = random.Random(os.urandom(16))  # independent of any seeding of the global generator (parallel workers)
_handed_out: deque[int] = deque(maxlen=4096)  # this process's, where the shared registry cannot be written


def _pick_range() -> tuple[int, int] | None:
    """Listening ports outside the kernel's ephemeral range, or None when no span is wide enough."""
    try:
        low, high = (int(v) for v in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return None
    if low - 1 - PICK_FROM >= _MIN_SPAN:
        return PICK_FROM, low - 1
    if 65_535 - (high + 1) >= _MIN_SPAN:
        return max(high + 1, PICK_FROM), 65_535
    return None


def registry_path() -> Path:
    """The file where this user's processes record the ports :func:`free_port` handed out."""
    return Path(tempfile.gettempdir()) / f"aether-sandbox-ports-{os.getuid()}"


@contextlib.contextmanager
def _held_ports() -> Iterator[set[int]]:
    """The ports handed out within :data:`HOLD_S` by any process (under an exclusive lock); what the caller
    adds to the set is recorded. This process's own list when the registry cannot be used."""
    try:
        handle = open(registry_path(), "a+")  # noqa: SIM115 - closed below, after the lock
    except OSError:
        held = set(_handed_out)
        yield held
        _handed_out.extend(held - set(_handed_out))
        return
    with handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        now = time.time()
        recent: dict[int, float] = {}
        for entry in handle.read().split():
            port, _, at = entry.partition("@")
            with contextlib.suppress(ValueError):
                if now - float(at) < HOLD_S:
                    recent[int(port)] = float(at)
        held = set(recent)
        yield held
        recent.update((port, now) for port in held - set(recent))
        handle.seek(0)
        handle.truncate()
        handle.write("".join(f"{port}@{at:.0f}\n" for port, at in recent.items()))


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free right now, for a server to listen on a little later.

    Picked at random outside the kernel's ephemeral range: a port the kernel
    hands out (bind to port 0) is one it also gives outgoing connections as
    their local port, so between this call and the server's bind any client on
    the machine could take it (it did: a service start failed with EADDRINUSE
    while parallel tests connected). Nor is a port handed out twice within
    :data:`HOLD_S` by this user's processes (a registry file under a lock:
    parallel test workers each picking at random collided too). A process
    outside the sandbox may still bind it first.
    """
    span = _pick_range()
    if span is not None:
        with _held_ports() as held:
            for _ in range(200):
                port = _random.randint(*span)
                if port not in held and not port_in_use(port, host):
                    held.add(port)
                    return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Return True when a TCP listener already holds ``host:port``.

    Binds with SO_REUSEADDR, as the servers themselves do, so a port that only
    has connections in TIME_WAIT (e.g. right after a server stopped) counts as
    free, while a listener on the address or on 0.0.0.0 counts as taken.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
        return False


def ensure_ports_free(ports: Mapping[str, int], *, what: str, host: str = LOOPBACK) -> None:
    """Raise :class:`PortInUse` for the first of ``ports`` already taken.

    ``ports`` maps a role ("client", "monitor") to a port number; ``what``
    names the server in the error message.
    """
    for role, port in ports.items():
        if port_in_use(port, host):
            raise PortInUse(port, host=host, what=f"{what} ({role})")
