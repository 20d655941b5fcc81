"""The Feast HTTP feature server (``feast serve``) as a managed process.

It serves ``POST /get-online-features`` and ``GET /health`` from the Redis
online store, reading feature definitions from the rendered repository's
registry.  Like every :class:`~sandbox.infra.process.ManagedServer` it is a
context manager, waits for readiness with a timeout and leaves nothing behind
when start fails.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from sandbox.features import venv as feast_venv
from sandbox.infra.process import HttpServer


class FeatureServer(HttpServer):
    """``feast serve`` from the Feast venv on a loopback port (gunicorn, one uvicorn worker)."""

    name: ClassVar[str] = "feast"
    poll_interval: ClassVar[float] = 0.2
    health_path = "/health"

    def __init__(self, data_dir: Path, repo_dir: Path, port: int, *, venv: Path | None = None,
                 bind: str | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("start_timeout", 60.0)
        super().__init__(data_dir, port, **kwargs)
        self.repo_dir = repo_dir
        self.venv = venv or feast_venv.venv_dir()
        #: The address ``feast serve`` listens on: loopback, or all addresses in a container (``AETHER_HOST``).
        self.bind = bind or self.host

    def command(self) -> list[str]:
        # The registry is re-read every 5 s, so a materialisation's `apply` reaches a running server.
        return [
            str(self.venv / "bin" / "feast"), "-c", str(self.repo_dir), "serve", "--host", self.bind,
            "--port", str(self.port), "--workers", "1", "--no-access-log", "--registry_ttl_sec", "5",
        ]
