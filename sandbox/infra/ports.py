"""Loopback port helpers: pick a free port, tell whether one is taken."""

from __future__ import annotations

import errno
import socket
from collections.abc import Mapping

from sandbox.infra.errors import PortInUse

#: Every embedded server binds here and nowhere else (a sandbox must not be
#: reachable from the LAN).
LOOPBACK = "127.0.0.1"


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that is free right now.

    The kernel picks it (bind to port 0), so it is free at the moment of the
    call; another process may still take it before the caller binds.
    """
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
