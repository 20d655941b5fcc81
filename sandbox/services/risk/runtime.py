"""The running risk-service: pools, in-memory datasets, reloaders, listeners, consumer and counters.

Built by the ``on_startup`` hook (``app.state.risk``) and reached by route
handlers through the :data:`Risk` dependency.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, FastAPI, Request

from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.metrics import counter
from sandbox.services.risk import store_compliance, store_esg, store_limits, store_positions
from sandbox.services.risk.capital import CapitalSource
from sandbox.services.risk.listener import ChangeListener
from sandbox.services.risk.positions import Fill
from sandbox.services.risk.reload import Reloader
from sandbox.services.risk.rules import Assessment, Order, VolatilityScaling, evaluate, reduces_position
from sandbox.services.risk.settings import RiskSettings
from sandbox.services.risk.volatility import VolatilitySource
from sandbox.services.risk.state import RiskState

log = logging.getLogger("sandbox.services.risk")


@dataclass
class Counters:
    """The service's own Prometheus counters."""

    checks: Any
    violations: Any
    fills: Any
    rejected: Any
    broadcasts: Any
    capital: Any
    reload_errors: Any
    volatility: Any
    scaling: Any

    @classmethod
    def register(cls, app: FastAPI) -> Counters:
        """Create (once) the counters in the app's registry."""
        return cls(
            checks=counter(app, "risk_checks_total", "Order checks, by outcome.", ["outcome"]),
            violations=counter(app, "risk_violations_total", "Rule violations found, by code.", ["code"]),
            fills=counter(app, "risk_fills_total", "Fills consumed, by outcome.", ["outcome"]),
            rejected=counter(app, "risk_fill_messages_rejected_total", "Kafka fill messages skipped as invalid.", ["reason"]),
            broadcasts=counter(
                app, "risk_killswitch_broadcasts_total", "Kill-switch NATS publications, by kind and outcome.",
                ["kind", "outcome"],
            ),
            capital=counter(app, "risk_capital_lookups_total", "capital-allocator requests, by outcome.", ["outcome"]),
            reload_errors=counter(app, "risk_dataset_reload_errors_total", "Failed dataset reloads.", ["dataset"]),
            volatility=counter(
                app, "risk_volatility_lookups_total", "Feature-server volatility requests, by outcome.", ["outcome"]
            ),
            scaling=counter(
                app, "risk_position_limit_scaling_total",
                "Position limits applied, by scaling outcome (scaled, within_reference, fallback).", ["outcome"],
            ),
        )


class RiskRuntime:
    """Everything a request needs, created once per process."""

    def __init__(
        self,
        *,
        settings: RiskSettings,
        compliance: asyncpg.Pool,
        esg: asyncpg.Pool,
        diversification: asyncpg.Pool,
        counters: Counters,
        nats: Any = None,
        capital: CapitalSource | None = None,
        volatility: VolatilitySource | None = None,
    ) -> None:
        """Wire the reloaders to the pools; :meth:`start` loads and starts listening."""
        self.settings = settings
        self.pools = {"compliance": compliance, "esg": esg, "diversification": diversification}
        self.counters = counters
        self.nats = nats
        self.capital = capital
        self.volatility = volatility
        self.state = RiskState()
        self.consumer: Any = None
        self.listeners: list[ChangeListener] = []
        s = self.state

        def reloader(name: str, load: Any, apply: Any) -> Reloader:
            return Reloader(name, load, apply, on_error=lambda n: counters.reload_errors.labels(n).inc())

        self.reloaders = {
            "restricted": reloader("restricted", lambda: store_compliance.load_restricted(compliance), s.set_restricted),
            "kill_switch": reloader(
                "kill_switch", lambda: store_compliance.load_kill_switches(compliance), s.set_kill_switches
            ),
            "esg_exclusion": reloader("esg_exclusion", lambda: store_esg.load_exclusions(esg), s.set_esg),
            "limits": reloader("limits", lambda: store_limits.load_limits(diversification), s.set_limits),
            "positions": reloader("positions", self._load_books, self._merge_books),
        }
        self._tasks: set[asyncio.Task[None]] = set()
        self._outcome_children = {o: counters.checks.labels(o) for o in ("allowed", "rejected")}
        self._violation_children: dict[str, Any] = {}

    # ------------------------------------------------------------------ datasets

    async def _load_books(self) -> tuple[list[Any], list[Any]]:
        pool = self.pools["diversification"]
        return await store_positions.load_positions(pool), await store_positions.load_marks(pool)

    def _merge_books(self, books: tuple[list[Any], list[Any]]) -> None:
        self.state.merge_positions(books[0])
        self.state.merge_marks(books[1])

    async def start(self) -> None:
        """Load every dataset, then listen for changes on the three databases."""
        for reloader in self.reloaders.values():
            await reloader.load_now()
        by_db = {
            "compliance": ("restricted", "kill_switch"),
            "esg": ("esg_exclusion",),
            "diversification": ("limits", "positions"),
        }
        dsns = {
            "compliance": self.settings.compliance_database_url,
            "esg": self.settings.esg_database_url,
            "diversification": self.settings.diversification_database_url,
        }
        for db, names in by_db.items():
            listener = ChangeListener(
                db, dsns[db], self._on_notify, lambda names=names: [self.reloaders[n].request() for n in names],
            )
            await listener.start()
            self.listeners.append(listener)

    def _on_notify(self, payload: str) -> None:
        """A dataset changed on some replica: reload it (positions: only the rows named)."""
        if payload.startswith("positions:"):
            body = payload[len("positions:"):]
            if body == "*":
                self.reloaders["positions"].request()
                return
            doc = json.loads(body)
            keys = [(a, s) for a, s in doc.get("p", [])]
            symbols = list(doc.get("m", []))
            task = asyncio.get_running_loop().create_task(self._reload_rows(keys, symbols))
            self._tasks.add(task)  # keep a reference until done
            task.add_done_callback(self._tasks.discard)
            return
        name = {"restricted": "restricted", "kill_switch": "kill_switch", "esg_exclusion": "esg_exclusion",
                "limits": "limits"}.get(payload)
        if name is not None:
            self.reloaders[name].request()

    async def _reload_rows(self, keys: list[tuple[str, str]], symbols: list[str]) -> None:
        pool = self.pools["diversification"]
        try:
            if keys:
                self.state.merge_positions(await store_positions.load_positions(pool, keys))
            if symbols:
                self.state.merge_marks(await store_positions.load_marks(pool, symbols))
        except Exception as exc:  # fall back to a full reload, which retries until the database answers
            log.warning("position reload failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            self.reloaders["positions"].request()

    async def refresh(self, name: str) -> None:
        """Reload dataset ``name`` now and wait for it (read-your-writes after a change)."""
        if not await self.reloaders[name].refresh():
            log.warning("dataset reload after a change timed out", extra={"dataset": name})

    def listeners_health(self) -> str | None:
        """None when every change listener is connected."""
        down = [listener.name for listener in self.listeners if not listener.connected]
        return f"change listener disconnected: {', '.join(down)}" if down else None

    async def periodic_reload(self, stop: asyncio.Event) -> None:
        """Reload every dataset every ``reload_s`` seconds (safety net beside NOTIFY)."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), self.settings.reload_s)
                return
            except TimeoutError:
                for reloader in self.reloaders.values():
                    reloader.request()

    # ------------------------------------------------------------------ fills and checks

    async def record_fills(self, fills: list[Fill]) -> None:
        """Record a batch from Kafka and update memory now (other replicas follow via NOTIFY)."""
        result = await store_positions.record_fills(self.pools["diversification"], fills)
        self.state.merge_positions(result.positions)
        self.state.merge_marks(result.marks)
        if result.recorded:
            self.counters.fills.labels("recorded").inc(result.recorded)
        if result.duplicates:
            self.counters.fills.labels("duplicate").inc(result.duplicates)

    async def check(self, order: Order) -> Assessment:
        """Evaluate an order against the in-memory datasets (capital fetched when it applies)."""
        capital = None
        if order.strategy and self.capital is not None:
            capital = await self.capital.get(order.strategy)
        scaling = await self._volatility_scaling(order)
        result = evaluate(
            order, self.state, today=datetime.now(timezone.utc).date(), capital=capital, volatility=scaling
        )
        if scaling is not None and result.position_limit is not None:
            outcome = "scaled" if result.position_limit.scaled else (
                "fallback" if scaling.volatility.value is None else "within_reference")
            self.counters.scaling.labels(outcome).inc()
        self._outcome_children["allowed" if result.allowed else "rejected"].inc()
        for violation in result.violations:
            child = self._violation_children.get(violation.code)
            if child is None:
                child = self._violation_children[violation.code] = self.counters.violations.labels(violation.code)
            child.inc()
        return result

    async def _volatility_scaling(self, order: Order) -> VolatilityScaling | None:
        """The volatility for scaling this order's position limit; None when no scaled limit applies."""
        if self.volatility is None or self.state.limits.position_limit(order.account, order.symbol) is None:
            return None
        book = self.state.positions.get(order.account, {}).get(order.symbol)
        if reduces_position(book.qty if book is not None else Decimal(0), order.signed_qty):
            return None  # exempt from the limit: no lookup latency
        settings = self.settings
        return VolatilityScaling(
            settings.volatility_reference, settings.volatility_floor, await self.volatility.get(order.symbol)
        )

    async def stop(self) -> None:
        """Stop listeners, reloaders and the consumer."""
        if self.consumer is not None:
            await self.consumer.stop()
        for listener in self.listeners:
            await listener.stop()
        for reloader in self.reloaders.values():
            await reloader.stop()
        if self.capital is not None:
            await self.capital.aclose()
        if self.volatility is not None:
            await self.volatility.aclose()


async def get_risk(request: Request) -> RiskRuntime:
    """Dependency: the app's :class:`RiskRuntime` (503 while starting)."""
    runtime = getattr(request.app.state, "risk", None)
    if runtime is None:
        raise ServiceError(503, "starting", "risk-service is starting")
    return runtime


Risk = Annotated[RiskRuntime, Depends(get_risk)]
