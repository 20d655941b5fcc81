"""The replay path as processes, for tests and benchmarks: venue feed + ingest on a given Kafka.

:func:`replay_platform` starts ``python -m sandbox.venue.control`` (the venue's
WebSocket market data with replay control) and ``python -m sandbox.ingest``
pointed at it and at a Kafka bootstrap, waits until both answer ``/healthz``,
yields their :class:`~sandbox.replay.run.Endpoints`, and stops both (by PID)
on exit, also when start-up fails.  The ingest can be put into a cgroup (with
its memory limit from its first instruction) for budget measurements.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from sandbox.infra.ports import free_port
from sandbox.infra.process import ManagedServer
from sandbox.replay.run import Endpoints


class PythonProcess(ManagedServer):
    """``python -m MODULE`` with its environment, ready when ``GET /healthz`` answers 200."""

    name: ClassVar[str] = "python"

    def __init__(
        self, data_dir: Path, name: str, module: str, port: int, env: Mapping[str, str], *,
        preexec: Any = None, start_timeout: float = 60.0,
    ) -> None:
        super().__init__(data_dir, start_timeout=start_timeout)
        self.name = name  # type: ignore[misc] - per instance: the log file carries it
        self.module = module
        self.port = port
        self.env = dict(env)
        self.preexec = preexec

    @property
    def ports(self) -> dict[str, int]:
        return {"http": self.port}

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def popen_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"env": self.env}
        if self.preexec is not None:
            options["preexec_fn"] = self.preexec
        return options

    def ready(self) -> bool | str:
        import urllib.error
        import urllib.request

        try:
            with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:  # noqa: S310 - loopback
                return response.status == 200 or f"/healthz answered {response.status}"
        except urllib.error.HTTPError as exc:
            return f"/healthz answered {exc.code}"


@dataclass
class ReplayPlatform:
    """The running venue feed and ingest."""

    endpoints: Endpoints
    venue: PythonProcess
    ingest: PythonProcess
    ws_port: int
    state_file: Path


def _base_env() -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "PYTHONPATH", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if k in keep} | {"PYTHONUNBUFFERED": "1"}


@contextlib.contextmanager
def replay_platform(
    root: Path,
    kafka_bootstrap: str,
    *,
    ingest_env: Mapping[str, str] | None = None,
    ingest_preexec: Any = None,
    ws_port: int | None = None,
) -> Iterator[ReplayPlatform]:
    """Start the venue feed and the ingest under ``root``; stop both when the block ends."""
    root = Path(root)
    venue_port, ws_port, ingest_port = free_port(), ws_port or free_port(), free_port()
    state_file = root / "ingest" / "state.json"
    venue = PythonProcess(
        root / "venue", "kraken-venue", "sandbox.venue.control", venue_port,
        _base_env() | {"AETHER_PORT": str(venue_port), "AETHER_WS_PORT": str(ws_port)},
    )
    ingest = PythonProcess(
        root / "ingest", "kraken-ws-ingest", "sandbox.ingest", ingest_port,
        _base_env() | {
            "AETHER_PORT": str(ingest_port),
            "INGEST_KRAKEN_WS_URL": f"ws://127.0.0.1:{ws_port}",
            "INGEST_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "INGEST_STATE_FILE": str(state_file),
            "INGEST_BACKOFF_MAX_S": "2",
        } | dict(ingest_env or {}),
        preexec=ingest_preexec,
    )
    with venue, ingest:
        yield ReplayPlatform(Endpoints(venue.url, ingest.url, kafka_bootstrap), venue, ingest, ws_port, state_file)
