"""The running OMS: every collaborator built once at start-up, reached by routes through :data:`Oms`.

Start-up order: the venue key pair is read, the instrument catalogue loaded
(retried in the background when the venue is not up yet), kill-switch states
are read from risk-service and followed on NATS, the event publisher and the
executions feed start, then the start-up reconciliation runs in the
background; readiness waits for it (:func:`startup_reconciled`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from sandbox.services.kit.db import HeldConnections
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.metrics import counter, gauge
from sandbox.services.kit.settings import KitSettings
from sandbox.services.oms import store
from sandbox.services.oms.capital import CapitalClient
from sandbox.services.oms.events import EventPublisher
from sandbox.services.oms.executions import ExecutionFeed
from sandbox.services.oms.http_client import HttpPool
from sandbox.services.oms.idempotency import IdempotencyKeys
from sandbox.services.oms.instruments import InstrumentCatalog, fetch_catalog
from sandbox.services.oms.killswitch import KillSwitches
from sandbox.services.oms.kraken_client import KrakenClient
from sandbox.services.oms.orders import OrderService
from sandbox.services.oms.ownership import replica_tag
from sandbox.services.oms.reconcile import Reconciler
from sandbox.services.oms.settings import OmsSettings
from sandbox.services.oms.tracker import OrderTracker
from sandbox.services.oms.upstream import Upstreams

log = logging.getLogger("sandbox.services.oms")

CATALOG_REFRESH_S = 60.0
#: Database connections held beside the pool for the order path: at 100 orders/s about one is busy at a time.
HELD_CONNECTIONS = 2


async def _keep_session(_conn: Any) -> None:
    """A pool ``reset`` that sends nothing (see :func:`lighten_pool_release`)."""


def lighten_pool_release(pool: Any) -> None:
    """Skip asyncpg's reset query when a connection goes back to the pool.

    By default every release runs ``SELECT pg_advisory_unlock_all(); CLOSE ALL;
    UNLISTEN *; RESET ALL`` — one more round trip for every pooled query, which
    doubled the OMS's database cost per order. The OMS never changes session
    state (no session advisory locks, LISTEN, SET or cursors outside a
    transaction); asyncpg still rolls back an open transaction on release.
    (``create_pool(reset=...)`` is the documented switch; the kit creates the pool.)
    """
    if pool is not None and hasattr(pool, "_reset"):
        pool._reset = _keep_session


def read_credentials(directory: str | None) -> tuple[str, str] | None:
    """The key pair from ``<dir>/api_key`` and ``<dir>/api_secret`` (None when absent or unreadable)."""
    if not directory:
        return None
    base = Path(directory)
    try:
        key = (base / "api_key").read_text().strip()
        secret = (base / "api_secret").read_text().strip()
    except OSError:
        return None
    return (key, secret) if key and secret else None


class LabelledCounter:
    """A labelled Prometheus counter whose children are looked up once per label set.

    ``Counter.labels()`` validates and joins the label values on every call (about
    ten microseconds); an order increments about ten counters, so the children are
    kept here. Label sets are few and fixed (outcomes, codes, kinds, topics).
    """

    __slots__ = ("counter", "_children")

    def __init__(self, counter: Any) -> None:
        """Wrap ``counter`` (a ``prometheus_client.Counter`` with labels)."""
        self.counter = counter
        self._children: dict[tuple[str, ...], Any] = {}

    def labels(self, *values: str) -> Any:
        """The child counter of ``values`` (as ``Counter.labels``)."""
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self.counter.labels(*values)
        return child


def register_counters(app: FastAPI) -> dict[str, LabelledCounter]:
    """The service's own Prometheus counters."""
    return {name: LabelledCounter(c) for name, c in _counters(app).items()}


def _counters(app: FastAPI) -> dict[str, Any]:
    return {
        "placed": counter(app, "oms_orders_total", "Order placements by outcome (state, rejected, duplicate).",
                          ["outcome"]),
        "rejections": counter(app, "oms_rejections_total", "Rejection reasons by code.", ["code"]),
        "transitions": counter(app, "oms_transitions_total", "Order state transitions by target state.", ["to"]),
        "invalid": counter(app, "oms_invalid_transitions_total", "Transitions refused by the state machine.",
                           ["from_state", "to_state"]),
        "fills": counter(app, "oms_fills_total", "Fills recorded by source (ws, poll, reconcile...).", ["source"]),
        "adopted": counter(app, "oms_adopted_orders_total", "Venue orders adopted by source.", ["source"]),
        "unknown_outcomes": counter(app, "oms_unknown_outcomes_total", "Venue calls whose outcome was lost.",
                                    ["call"]),
        "events": counter(app, "oms_events_published_total", "Kafka events by topic and outcome.",
                          ["topic", "outcome"]),
        "reconciliations": counter(app, "oms_reconciliations_total", "Reconciliation runs by trigger and status.",
                                   ["trigger", "status"]),
        "differences": counter(app, "oms_reconciliation_differences_total",
                               "Differences reconciliation found between the OMS and the venue, by kind.", ["kind"]),
        "execution_events": counter(app, "oms_execution_events_total",
                                    "Executions feed events by kind and outcome: applied; skipped = nothing new for this "
                                    "replica; owner = applied by the replica that placed the order; dropped = "
                                    "more held than MAX_HELD (the poll repairs).",
                                    ["kind", "outcome"]),
    }


class OmsRuntime:
    """Everything the OMS runs, built in :meth:`start` and stopped in :meth:`stop`."""

    def __init__(self, app: FastAPI, settings: OmsSettings, kit: KitSettings) -> None:
        """Build the collaborators from the app's opened clients (nothing runs yet)."""
        self.settings = settings
        lighten_pool_release(app.state.db)
        #: The pool, with the order path's single statements on connections held aside (see HeldConnections).
        self.pool = HeldConnections(app.state.db, settings.database_url, size=HELD_CONNECTIONS)
        self.counters = register_counters(app)
        self.catalog = InstrumentCatalog()
        self.catalog_error: str | None = "not loaded yet"
        self.public = HttpPool(settings.venue_url, timeout=settings.venue_timeout_s, max_connections=4)
        creds = read_credentials(settings.kraken_credentials_dir)
        self.kraken: KrakenClient | None = None
        self.credentials = "absent" if settings.kraken_credentials_dir else "not configured"
        if creds is not None:
            try:
                self.kraken = KrakenClient(settings.venue_url, creds[0], creds[1], timeout=settings.venue_timeout_s,
                                           max_in_flight=settings.venue_max_in_flight)
                self.credentials = "loaded"
            except ValueError:
                self.credentials = "invalid (the secret is not base64)"
        self.upstreams = Upstreams(kit, {
            "policy": settings.policy_url, "risk": settings.risk_url, "fees": settings.fees_url,
            "capital": settings.capital_allocator_url,
        }, timeout=settings.check_timeout_s)
        self.capital = CapitalClient(self.upstreams)
        self.events = EventPublisher(app.state.kafka, self.pool, orders_topic=settings.orders_topic,
                                     fills_topic=settings.fills_topic, counter=self.counters["events"])
        self.kill_switches = KillSwitches(self._on_kill_switch)
        self.tracker = OrderTracker(
            pool=self.pool, catalog=lambda: self.catalog, kraken=lambda: self.kraken, events=self.events,
            capital=self.capital, adopt_account=settings.adopt_account,
            kill_switch_active=self.kill_switches.is_active, counters=self.counters,
        )
        #: This replica's order-id tag (see :mod:`.ownership`).
        self.replica = settings.replica_name or f"{socket.gethostname()}:{kit.port}"
        self.tag = replica_tag(self.replica)
        self.orders = OrderService(
            pool=self.pool, order_tag=self.tag, keys=IdempotencyKeys(app.state.redis, settings.idempotency_ttl_s),
            catalog=lambda: self.catalog, kraken=lambda: self.kraken, upstreams=self.upstreams, capital=self.capital,
            tracker=self.tracker, kill_switch=self.kill_switches.get, venue_timeout_s=settings.venue_timeout_s,
            check_timeout_s=settings.check_timeout_s, grace_s=settings.unknown_outcome_grace_s,
            counters=self.counters,
        )
        self.feed = ExecutionFeed(self.tracker, ws_url=settings.ws_url(), poll_interval_s=settings.poll_interval_s,
                                  resolve=self.orders.resolve, counter=self.counters["execution_events"],
                                  own_tag=self.tag if settings.foreign_event_grace_s > 0 else None,
                                  foreign_grace_s=settings.foreign_event_grace_s)
        self.reconciler = Reconciler(self.tracker, resolve=self.orders.resolve,
                                     lookback_s=settings.reconcile_lookback_s)
        gauge(app, "oms_executions_feed_connected", "1 while the executions feed is subscribed.").set_function(
            lambda: 1.0 if self.feed.connected else 0.0)
        self.nats = app.state.nats
        self.startup_done = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Load what the hot path needs and start the background work."""
        await self.pool.start()
        await self.refresh_catalog()
        accounts = await store.known_accounts(self.pool)
        active = await self.kill_switches.load(self.upstreams, accounts)
        if self.nats is not None:
            await self.kill_switches.subscribe(self.nats)
        self.events.start()
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._catalog_loop(), name="oms-catalog"))
        self._tasks.append(loop.create_task(self._startup(), name="oms-startup"))
        log.info("oms runtime started", extra={
            "credentials": self.credentials, "instruments": len(self.catalog), "kill_switches_active": active,
            "checks": sorted(self.upstreams.pools), "events": self.events.enabled,
        })

    async def _startup(self) -> None:
        try:
            if self.settings.reconcile_on_startup:
                await self.reconcile("startup", "oms-service")
        finally:
            self.startup_done.set()
        self.feed.start()
        if self.settings.reconcile_interval_s > 0:
            self._tasks.append(asyncio.get_running_loop().create_task(self._periodic(), name="oms-reconcile"))

    async def reconcile(self, trigger: str, who: str, lookback_s: float | None = None) -> dict[str, Any]:
        """Run one reconciliation (waiting for the catalogue briefly if it is not loaded)."""
        if not len(self.catalog):
            await self.refresh_catalog()
        record = await self.reconciler.run(trigger, who, lookback_s)
        self.counters["reconciliations"].labels(trigger, record["status"]).inc()
        return record

    async def _periodic(self) -> None:
        while True:
            await asyncio.sleep(self.settings.reconcile_interval_s)
            with contextlib.suppress(Exception):
                await self.reconcile("periodic", "oms-service")

    async def refresh_catalog(self) -> bool:
        """Reload the instruments from the venue; False (last copy kept) when it fails."""
        try:
            catalog = await fetch_catalog(self.public)
        except Exception as exc:  # noqa: BLE001 - venue not up yet: keep the last copy, retry
            self.catalog_error = f"{type(exc).__name__}: {exc}"
            log.info("instruments not loaded", extra={"error": self.catalog_error})
            return False
        self.catalog, self.catalog_error = catalog, None
        return True

    async def _catalog_loop(self) -> None:
        while True:
            await asyncio.sleep(1.0 if not len(self.catalog) else CATALOG_REFRESH_S)
            await self.refresh_catalog()

    async def _on_kill_switch(self, account: str, doc: dict[str, Any]) -> None:
        orders = await store.open_orders(self.pool, account=account)
        if not orders:
            return
        result = await self.orders.cancel_many(orders, f"kill switch: {doc.get('reason')}", f"account:{account}")
        log.warning("kill switch swept the account's open orders", extra={
            "account": account, "canceled": len(result["canceled"]), "failed": len(result["failed"])})

    def status(self) -> dict[str, Any]:
        """``GET /v1/status``: what the OMS is connected to and what it has loaded."""
        return {
            "credentials": self.credentials, "instruments": len(self.catalog), "instruments_error": self.catalog_error,
            "replica": {"name": self.replica, "tag": self.tag},
            "executions_feed": {"connected": self.feed.connected, "events": self.feed.events,
                                "connects": self.feed.connects, "last_error": self.feed.last_error,
                                "held": self.feed.held},
            "kill_switches": self.kill_switches.active, "checks": sorted(self.upstreams.pools),
            "events_enabled": self.events.enabled, "startup_reconciled": self.startup_done.is_set(),
            "last_reconciliation": ({k: self.reconciler.last[k] for k in ("id", "status", "finished_at")}
                                    if self.reconciler.last else None),
        }

    async def stop(self) -> None:
        """Stop the background work and close the clients."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.feed.stop()
        await self.kill_switches.close()
        await self.orders.drain()
        self.orders.keys.close()
        await self.capital.drain()
        await self.events.stop()
        await self.upstreams.aclose()
        await self.public.aclose()
        if self.kraken is not None:
            await self.kraken.aclose()
        await self.pool.close()


async def get_runtime(request: Request) -> OmsRuntime:
    """The app's runtime (503 until started).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its thread
    pool, a thread hop per request that cost more CPU than the rest of it.
    """
    runtime = getattr(request.app.state, "oms", None)
    if runtime is None:
        raise ServiceError(503, "starting", "oms-service is starting", headers={"Retry-After": "1"})
    return runtime


Oms = Annotated[OmsRuntime, Depends(get_runtime)]
