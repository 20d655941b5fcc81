"""The observability endpoints of a sandbox, as ``status`` shows them."""

from __future__ import annotations

from typing import Any

from sandbox.runtimes.base import SandboxStatus
from sandbox.spec.models import Kind, PlatformSpec


def observability_urls(status: SandboxStatus, spec: PlatformSpec) -> dict[str, dict[str, Any]]:
    """Per observability component in the sandbox: its URL when it runs, else its state and why."""
    kinds = {c.name for c in spec.components if c.kind is Kind.OBSERVABILITY}
    out: dict[str, dict[str, Any]] = {}
    for c in status.components:
        if c.name not in kinds:
            continue
        running = c.state == "running" and c.port
        out[c.name] = {
            "url": (c.url or f"http://127.0.0.1:{c.port}") if running else None,
            "state": c.state,
            "detail": "" if running else c.detail,
        }
    return out
