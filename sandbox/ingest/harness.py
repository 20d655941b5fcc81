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
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandbox.infra.ports import free_port
from sandbox.infra.process import PythonModuleServer
from sandbox.replay.run import Endpoints


@dataclass
class ReplayPlatform:
    """The running venue feed and ingest."""

    endpoints: Endpoints
    venue: PythonModuleServer
    ingest: PythonModuleServer
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
    venue = PythonModuleServer(
        root / "venue", "kraken-venue", "sandbox.venue.control", venue_port,
        _base_env() | {"AETHER_PORT": str(venue_port), "AETHER_WS_PORT": str(ws_port)},
    )
    ingest = PythonModuleServer(
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
