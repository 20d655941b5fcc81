"""The ingest service: feed, publisher, HTTP endpoints and probe state, on one asyncio loop.

Endpoints (on ``AETHER_PORT``):

``GET /healthz``
    200 while the event loop runs (liveness; the local runtime's readiness check).
``GET /readyz``
    200 when connected and every subscription is acknowledged, else 503.
``GET /metrics``
    Prometheus text (:mod:`sandbox.ingest.metrics`).
``GET /stats``
    JSON: totals, the current run (per topic: records produced and acknowledged,
    first/last sequence and Kafka offset), subscriptions, connection state.
``POST /subscriptions``
    ``{"channels": [...], "symbols": [...], "depth": 10, "api": "v2", "run": "ID", "fresh": true, "wait_s": 10}``:
    create the topics, start a new run (``run`` names it), switch the API
    version (reconnecting to its URL) when ``api`` differs, replace the
    subscriptions (``fresh`` resubscribes the kept ones too, for new snapshots),
    connect at once when disconnected, and wait up to ``wait_s`` for the
    acknowledgements.  Answers with the run,
    the topics and whether everything is subscribed.
``GET /acks?topic=T``
    Per record of the current run in topic ``T``, in sequence order from
    ``first_seq``: the broker-acknowledgement time (epoch ns) and the frame it
    came from (``connection serial << 32 | frame number on that connection``),
    plus each connection's id from the venue's greeting.  With the venue's send
    times per connection this gives each record's end-to-end latency.
``POST /flush``
    Wait (up to ``timeout_s``, default 10) until the broker acknowledged every
    queued record, then answer like ``GET /stats``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from sandbox.ingest import statefile
from sandbox.ingest.feed import Feed
from sandbox.ingest.httpd import HttpServer, Response, json_response
from sandbox.ingest.metrics import CONTENT_TYPE, registry_for, render
from sandbox.ingest.normalise import Normaliser
from sandbox.ingest.publisher import Publisher
from sandbox.ingest.settings import BOOK_DEPTHS, KNOWN_CHANNELS, IngestSettings
from sandbox.ingest.stats import RunStats, Stats

log = logging.getLogger("sandbox.ingest")

#: Where the shipped replay fixtures live in a checkout (and in the images).
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "kraken_replays"
#: Used only when no fixture ships and INGEST_SYMBOLS is empty.
FALLBACK_SYMBOLS = {"v2": ["BTC/USD", "ETH/USD"], "v1": ["XBT/USD", "ETH/USD"]}


def fixture_symbols(api: str, root: Path = FIXTURES) -> list[str]:
    """The symbols of the shipped fixtures speaking ``api`` (sorted), or the fallback pair."""
    found: set[str] = set()
    if root.is_dir():
        from sandbox.replay.fixture import FixtureError, read_session

        for path in sorted(root.rglob("*.ndjson*")):
            try:
                session = read_session(path)
                manifest = session.manifest if session.has_header else None
            except (FixtureError, OSError, ValueError):
                continue
            if manifest is not None and manifest.api == api:
                found.update(manifest.symbols)
    return sorted(found) or FALLBACK_SYMBOLS[api]


def new_run_id(prefix: str = "live") -> str:
    """A short unique run name."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class IngestService:
    """Everything ``python -m sandbox.ingest`` runs."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.stats = Stats(run=RunStats(new_run_id()))
        self.normaliser = Normaliser(settings.topic_prefix, settings.api_version, self.stats.run.run)
        self.publisher = Publisher(
            settings.kafka_bootstrap, self.stats, linger_ms=settings.linger_ms, partitions=settings.topic_partitions
        )
        self.feed = Feed(settings, self.publisher, self.stats, self.normaliser)
        self.registry = registry_for(self.stats)
        self.state_path = settings.state_file or statefile.default_path()
        self.started = time.time()
        self.http = HttpServer(
            {
                ("GET", "/healthz"): self._healthz,
                ("GET", "/readyz"): self._readyz,
                ("GET", "/metrics"): self._metrics,
                ("GET", "/stats"): self._stats,
                ("POST", "/subscriptions"): self._subscriptions,
                ("POST", "/flush"): self._flush,
                ("GET", "/acks"): self._acks,
            },
            settings.host,
            settings.port,
        )
        self._lock = asyncio.Lock()

    # ---- lifecycle ---------------------------------------------------------------------

    async def run(self) -> None:
        """Start everything and run until SIGTERM / SIGINT."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.feed.stop)
        symbols = self.settings.symbols or fixture_symbols(self.settings.api_version)
        topics = [self.normaliser.topic(c, s) for c in self.settings.channels for s in symbols]
        self.write_state()
        await self.http.start()
        log.info("kraken-ws-ingest on http://%s:%d, feed %s, %d topics", self.settings.host, self.http.port,
                 self.feed.url, len(topics))
        # Heartbeats start first: waiting for the broker is alive, just not ready.
        tasks = [asyncio.create_task(self._housekeeping(), name="housekeeping")]
        try:
            await self._ensure_topics(topics)
            self.feed.want(self.settings.channels, symbols)
            await self.feed.run()
        finally:
            for task in tasks:
                task.cancel()
            await self.http.close()
            await self.flush(timeout=5.0)
            with contextlib.suppress(OSError):
                os.unlink(self.state_path)
            log.info("stopped")

    async def _ensure_topics(self, topics: list[str]) -> None:
        """Create topics, retrying while the broker is not reachable yet."""
        delay = 0.2
        while not self.feed.stopping.is_set():
            try:
                await asyncio.to_thread(self.publisher.ensure_topics, topics)
                return
            except Exception as exc:  # noqa: BLE001 - KafkaException, timeouts: retry until the broker answers
                self.stats.detail = f"creating topics: {exc}"
                log.warning("creating topics failed (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _housekeeping(self) -> None:
        """Serve delivery reports ten times a second; refresh gauges and the probe state file each second.

        Delivery reports carry their own latency (librdkafka's), so serving them
        late does not distort it; the hot path also polls every few hundred records.
        """
        next_state = 0.0
        while True:
            self.publisher.poll()
            now = time.monotonic()
            if now >= next_state:
                next_state = now + 1.0
                self.stats.settle()
                self.stats.subscribed = self.feed.subscribed
                self.stats.feed_lag_s = self.feed.feed_lag(time.time())
                self.write_state()
            await asyncio.sleep(0.1)

    def write_state(self) -> None:
        """Refresh the state file the exec probes read."""
        with contextlib.suppress(OSError):
            statefile.write_state(
                self.state_path,
                {
                    "pid": os.getpid(),
                    "heartbeat": time.time(),
                    "started": self.started,
                    "connected": self.stats.connected,
                    "subscribed": self.feed.subscribed,
                    "detail": self.stats.detail,
                },
            )

    async def flush(self, timeout: float = 10.0) -> int:
        """Serve delivery reports on this loop until nothing is queued (or ``timeout``); returns what is left."""
        deadline = time.monotonic() + timeout
        while (left := self.publisher.poll()) and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        return left

    # ---- endpoints ---------------------------------------------------------------------

    async def _healthz(self, _: bytes, __: dict[str, str]) -> Response:
        return json_response(200, {"status": "ok", "connected": self.stats.connected, "subscribed": self.feed.subscribed})

    async def _readyz(self, _: bytes, __: dict[str, str]) -> Response:
        ok, reason = statefile.evaluate(
            {"heartbeat": time.time(), "connected": self.stats.connected, "subscribed": self.feed.subscribed,
             "detail": self.stats.detail},
            "ready",
        )
        return json_response(200 if ok else 503, {"ready": ok, "reason": reason})

    async def _metrics(self, _: bytes, __: dict[str, str]) -> Response:
        self.stats.subscribed = self.feed.subscribed
        self.stats.feed_lag_s = self.feed.feed_lag(time.time())
        return 200, CONTENT_TYPE, render(self.registry)

    def snapshot(self) -> dict[str, Any]:
        """What ``GET /stats`` answers."""
        s, f = self.stats, self.feed
        s.settle()
        return {
            "service": "kraken-ws-ingest",
            "url": self.settings.kraken_ws_url,
            "api": f.api,
            "depth": f.depth,
            "connected": s.connected,
            "subscribed": f.subscribed,
            "detail": s.detail,
            "subscriptions": {
                "wanted": sorted(f"{c}:{sym}" for c, sym in f.wanted),
                "acked": sorted(f"{c}:{sym}" for c, sym in f.acked),
                "refused": {f"{c}:{sym}": why for (c, sym), why in sorted(f.refused.items())},
                "resyncing": sorted(f.resyncing),
            },
            "connection": {"serial": f.conn_serial, "conn_id": f.conn_id, "frames": f.conn_frames},
            "producer_queue": s.producer_queue,
            "run": s.run.as_dict(),
            "totals": {
                "frames": s.frames,
                "invalid_frames": s.invalid_frames,
                "records_produced": sum(s.produced.values()),
                "records_published": sum(s.published.values()),
                "publish_errors": sum(s.publish_errors.values()),
                "checksums_verified": s.checksums_verified,
                "checksums_failed": sum(s.checksums_failed.values()),
                "crossed": s.crossed,
                "gaps": s.gaps,
                "missing": s.missing,
                "out_of_order": s.out_of_order,
                "dropped": s.dropped,
                "reconnects": s.reconnects,
                "resubscribes": s.resubscribes,
            },
        }

    async def _stats(self, _: bytes, __: dict[str, str]) -> Response:
        return json_response(200, self.snapshot())

    async def _acks(self, _: bytes, query: dict[str, str]) -> Response:
        topic = query.get("topic", "")
        runs = self.stats.run.topics
        if topic not in runs:
            return json_response(404, {"error": f"topic {topic!r} has no record in run {self.stats.run.run}"})
        tr = runs[topic]
        return json_response(200, {
            "run": self.stats.run.run, "topic": topic, "first_seq": tr.first_seq, "ack_ns": tr.ack_ns.tolist(),
            "frame_ref": tr.frame_ref.tolist(), "connections": self.stats.run.connections,
        })

    async def _flush(self, body: bytes, _: dict[str, str]) -> Response:
        try:
            timeout = float((json.loads(body) if body else {}).get("timeout_s", 10.0))
        except (ValueError, AttributeError, TypeError):
            return json_response(400, {"error": "body must be {\"timeout_s\": seconds}"})
        await self.flush(timeout)
        return json_response(200, self.snapshot())

    async def _subscriptions(self, body: bytes, _: dict[str, str]) -> Response:
        try:
            request = parse_subscriptions(body, self.feed.depth)
        except ValueError as exc:
            return json_response(400, {"error": str(exc)})
        async with self._lock:
            await self.flush(10.0)  # deliveries of the old run are counted in the old run
            run = request["run"] or new_run_id("run")
            topics = [self.normaliser.topic(c, s) for c in request["channels"] for s in request["symbols"]]
            await self._ensure_topics(topics)
            self.stats.new_run(run)
            if self.feed.ws is not None:  # records of this run can come from the connection open now
                self.stats.run.connections[self.feed.conn_serial] = self.feed.conn_id
            self.normaliser.run = run
            switched = request["api"] is not None and self.feed.switch_api(request["api"])
            self.feed.want(request["channels"], request["symbols"], request["depth"])
            if request["fresh"] and not switched:
                self.feed.resubscribe_all()
            if not self.stats.connected:
                self.feed.reconnect_now()  # do not sit out a backoff delay: the caller is waiting
            await self.feed.send_outbox()
            deadline = time.monotonic() + request["wait_s"]
            while not self.feed.subscribed and time.monotonic() < deadline:
                self.feed.changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.feed.changed.wait(), timeout=max(0.01, deadline - time.monotonic()))
        snap = self.snapshot()
        return json_response(200, {"run": run, "topics": topics, "subscribed": self.feed.subscribed,
                                   "subscriptions": snap["subscriptions"], "connected": snap["connected"]})


def parse_subscriptions(body: bytes, default_depth: int) -> dict[str, Any]:
    """Validate a ``POST /subscriptions`` body; raises ``ValueError`` with a plain reason."""
    try:
        doc = json.loads(body or b"{}")
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValueError("body must be a JSON object")
    symbols, channels = doc.get("symbols"), doc.get("channels", ["book", "trade"])
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) and s for s in symbols):
        raise ValueError("symbols must be a non-empty list of Kraken symbols")
    if not isinstance(channels, list) or not channels or not all(isinstance(c, str) for c in channels):
        raise ValueError("channels must be a non-empty list")
    if unknown := [c for c in channels if c not in KNOWN_CHANNELS]:
        raise ValueError(f"unknown channel(s) {', '.join(unknown)}; known: {', '.join(KNOWN_CHANNELS)}")
    depth = doc.get("depth", default_depth)
    if depth not in BOOK_DEPTHS:
        raise ValueError(f"depth must be one of {', '.join(map(str, BOOK_DEPTHS))}")
    api = doc.get("api")
    if api not in (None, "v1", "v2"):
        raise ValueError("api must be v1 or v2")
    run = doc.get("run")
    if run is not None and (not isinstance(run, str) or not run or len(run) > 64):
        raise ValueError("run must be a short string")
    wait_s = doc.get("wait_s", 10.0)
    if not isinstance(wait_s, int | float) or not 0 <= wait_s <= 120:
        raise ValueError("wait_s must be seconds between 0 and 120")
    return {"symbols": list(dict.fromkeys(symbols)), "channels": list(dict.fromkeys(channels)), "depth": depth,
            "api": api, "run": run, "fresh": bool(doc.get("fresh", True)), "wait_s": float(wait_s)}
