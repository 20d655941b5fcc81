"""The ingest's state file, written by the ingest and read by the exec probes.

Standard library only, and nothing imported at module level beyond it: the
probe (``python -m sandbox.ingest.probe live|ready``) runs every few seconds
under the component's 100m CPU budget, so its import cost must stay tiny.

The file is one small JSON object, replaced atomically (write then rename):
``pid``, ``heartbeat`` (epoch seconds of the event loop's latest tick),
``connected`` (a WebSocket is open), ``subscribed`` (every configured
subscription acknowledged), ``started`` and a free-text ``detail``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from typing import Any

#: A heartbeat older than this means the event loop is stuck: not live.
DEFAULT_MAX_AGE_S = 15.0


def default_path(env: Mapping[str, str] | None = None) -> str:
    """Where the state file lives: ``INGEST_STATE_FILE``, else one per sandbox and port in the temp dir.

    The ingest and its probes share the environment (Kubernetes runs exec
    probes inside the container; the local runtime renders one environment per
    component), so both compute the same path.
    """
    env = os.environ if env is None else env
    if explicit := env.get("INGEST_STATE_FILE"):
        return explicit
    sandbox = env.get("AETHER_SANDBOX", "default")
    port = env.get("AETHER_PORT", "8000")
    return os.path.join(env.get("TMPDIR") or "/tmp", f"aether-ingest-{sandbox}-{port}.json")  # noqa: S108 - a state file, not a secret


def write_state(path: str, state: Mapping[str, Any]) -> None:
    """Replace the state file atomically (readers never see half a file)."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:  # noqa: PTH123 - stdlib only, kept minimal
        json.dump(dict(state), handle)
    os.replace(tmp, path)


def read_state(path: str) -> dict[str, Any] | None:
    """The state, or ``None`` when the file is missing or unreadable."""
    try:
        with open(path, encoding="utf-8") as handle:  # noqa: PTH123
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def evaluate(state: Mapping[str, Any] | None, check: str, *, now: float | None = None, max_age_s: float = DEFAULT_MAX_AGE_S) -> tuple[bool, str]:
    """``(ok, reason)`` of the ``live`` or ``ready`` check against a state.

    live: the state exists and its heartbeat is fresh (the event loop runs);
    a dropped WebSocket is not a liveness failure, the ingest reconnects itself.
    ready: live, connected, and every configured subscription acknowledged.
    """
    if check not in ("live", "ready"):
        raise ValueError(f"unknown check {check!r} (live or ready)")
    if state is None:
        return False, "no state file (the ingest has not started, or cannot write it)"
    now = time.time() if now is None else now
    try:
        age = now - float(state.get("heartbeat", 0))
    except (TypeError, ValueError):
        return False, "state file has no valid heartbeat"
    if age > max_age_s:
        return False, f"heartbeat is {age:.1f}s old (limit {max_age_s:.0f}s): the event loop is stuck"
    if check == "live":
        return True, f"heartbeat {age:.1f}s old"
    if not state.get("connected"):
        return False, f"not connected to the Kraken WebSocket ({state.get('detail') or 'connecting'})"
    if not state.get("subscribed"):
        return False, "connected, subscriptions not all acknowledged yet"
    return True, "connected and subscribed"
