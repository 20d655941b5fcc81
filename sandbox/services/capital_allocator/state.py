"""Per-app state of capital-allocator (cache, sync, metrics) and its route dependency."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request

from sandbox.services.capital_allocator.cache import CapitalCache
from sandbox.services.capital_allocator.database import Database
from sandbox.services.capital_allocator.settings import CapitalAllocatorSettings
from sandbox.services.capital_allocator.sync import CacheSync
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.metrics import counter, gauge


@dataclass
class Metrics:
    """The service's own Prometheus instruments."""

    allocations: Any  # Counter{trigger, outcome}
    reservations: Any  # Counter{action, outcome}
    reloads: Any  # Counter{reason}
    capital: Any  # Gauge{kind}: nav, allocatable, allocated, reserved

    @classmethod
    def register(cls, app: FastAPI) -> Metrics:
        """Create the instruments in the app's registry."""
        return cls(
            allocations=counter(app, "capital_allocation_runs_total",
                                "Allocation runs by trigger and outcome.", ["trigger", "outcome"]),
            reservations=counter(app, "capital_reservation_calls_total",
                                 "Reservation calls by action and outcome.", ["action", "outcome"]),
            reloads=counter(app, "capital_cache_reloads_total", "Full cache reloads by reason.", ["reason"]),
            capital=gauge(app, "capital_amount", "Portfolio amounts as this replica sees them.", ["kind"]),
        )


@dataclass
class AllocatorState:
    """What the routes need."""

    settings: CapitalAllocatorSettings
    database: Database
    metrics: Metrics
    cache: CapitalCache = field(default_factory=CapitalCache)
    sync: CacheSync | None = None
    pool: Any = None  # asyncpg.Pool once started

    def bind_gauges(self) -> None:
        """Compute the amount gauges from the cache at scrape time (no bookkeeping on the hot path)."""

        def portfolio_value(attr: str) -> float:
            portfolio = self.cache.portfolio
            return float(getattr(portfolio, attr)) if portfolio is not None else 0.0

        self.metrics.capital.labels("nav").set_function(lambda: portfolio_value("nav"))
        self.metrics.capital.labels("allocatable").set_function(lambda: portfolio_value("allocatable"))
        self.metrics.capital.labels("allocated").set_function(lambda: float(self.cache.totals()[0]))
        self.metrics.capital.labels("reserved").set_function(lambda: float(self.cache.totals()[1]))


async def get_allocator(request: Request) -> AllocatorState:
    """The app's state; 503 until the cache is loaded.

    ``async`` on purpose: FastAPI runs plain ``def`` dependencies in a worker
    thread, which costs more than the whole cached read.
    """
    state: AllocatorState | None = getattr(request.app.state, "capital", None)
    if state is None or state.sync is None or not state.cache.loaded:
        raise ServiceError(503, "starting", "capital-allocator is still starting")
    return state


def get_sync(state: AllocatorState) -> CacheSync:
    """The started sync (for type checkers: never None once routes run)."""
    assert state.sync is not None
    return state.sync


Allocator = Annotated[AllocatorState, Depends(get_allocator)]
