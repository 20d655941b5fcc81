"""Change notifications on NATS: ``config.changed.<namespace>``.

Every committed change is published after the commit (a failed publish never
undoes or fails a write; it is logged and counted, and other replicas still
catch up from the database). When JetStream is available a stream (default
``CONFIG_CHANGES``, bounded by size and age) captures ``config.changed.>`` so
consumers that were away can replay recent changes, and publishes wait for its
acknowledgement; otherwise a plain publish is flushed to the server.

Each replica also subscribes to ``config.changed.>``: a notification naming a
version newer than its index knows wakes its catch-up at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from sandbox.services.config.models import ChangeEvent
from sandbox.services.config.telemetry import ConfigMetrics

log = logging.getLogger("sandbox.services.config")

SUBJECT_PREFIX = "config.changed."
WILDCARD = SUBJECT_PREFIX + ">"
PUBLISH_TIMEOUT_S = 2.0
STREAM_MAX_BYTES = 16 * 1024 * 1024
STREAM_MAX_AGE_S = 24 * 3600.0


def subject(namespace: str) -> str:
    """The subject of changes in ``namespace`` (namespace names are valid single tokens)."""
    return SUBJECT_PREFIX + namespace


class Notifier:
    """Publishes change events and listens for other replicas' events."""

    def __init__(self, nc: Any, metrics: ConfigMetrics, stream: str = "") -> None:
        """``nc`` is a connected nats-py client; ``stream`` names the JetStream stream ('' for none)."""
        self._nc = nc
        self._metrics = metrics
        self._stream_name = stream
        self._js: Any = None
        self._subscription: Any = None
        #: How notifications are made durable: reported in /healthz.
        self.mode = "core"

    async def ensure_stream(self) -> None:
        """Create (or reuse) the JetStream stream; fall back to plain NATS when that is impossible."""
        if not self._stream_name:
            return
        from nats.js.api import StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        try:
            js = self._nc.jetstream(timeout=PUBLISH_TIMEOUT_S)
            jsm = self._nc.jsm(timeout=PUBLISH_TIMEOUT_S)
            try:
                await jsm.stream_info(self._stream_name)
            except NotFoundError:
                await jsm.add_stream(StreamConfig(
                    name=self._stream_name, subjects=[WILDCARD], max_bytes=STREAM_MAX_BYTES,
                    max_age=STREAM_MAX_AGE_S, storage=StorageType.FILE,
                    description="config-service change notifications",
                ))
        except Exception as exc:  # JetStream disabled or the subjects taken: still notify over core NATS
            log.warning("JetStream stream unavailable; publishing plain NATS", extra={"error": str(exc)[:200]})
            return
        self._js = js
        self.mode = f"jetstream:{self._stream_name}"

    async def publish(self, namespace: str, payload: bytes) -> bool:
        """Publish one event; True when the server (or the stream) acknowledged it."""
        try:
            if self._js is not None:
                await self._js.publish(subject(namespace), payload, timeout=PUBLISH_TIMEOUT_S)
            else:
                await self._nc.publish(subject(namespace), payload)
                await self._nc.flush(timeout=PUBLISH_TIMEOUT_S)
        except Exception as exc:
            self._metrics.notification("published", "failed")
            log.warning("change notification not published", extra={"namespace": namespace, "error": str(exc)[:200]})
            return False
        self._metrics.notification("published", "ok")
        return True

    async def listen(self, on_event: Callable[[ChangeEvent], None]) -> None:
        """Subscribe to every namespace's changes; malformed messages are counted and ignored."""

        async def handle(msg: Any) -> None:
            try:
                event = ChangeEvent.model_validate_json(msg.data)
            except ValidationError:
                self._metrics.notification("received", "ignored")
                return
            self._metrics.notification("received", "ok")
            on_event(event)

        self._subscription = await self._nc.subscribe(WILDCARD, cb=handle)

    async def close(self) -> None:
        """Stop listening (the connection itself belongs to the kit)."""
        if self._subscription is not None:
            try:
                await self._subscription.unsubscribe()
            except Exception:  # connection already closing: nothing to release
                pass
            self._subscription = None
