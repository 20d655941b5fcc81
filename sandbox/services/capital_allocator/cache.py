"""The in-memory view of the portfolio and every strategy's capital, serving all hot reads.

Rows are immutable :class:`StrategyState` values carrying the version the
database gave them (one sequence for every change), so applying a change is
"keep the higher version": a replica's own write, a notification from another
replica and a full reload can arrive in any order and the cache still ends at
the newest state. The capital document of each strategy is rendered to JSON
bytes once per version, so a read is a dictionary lookup.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.services.capital_allocator.algorithm import allocatable_capital, quantum
from sandbox.services.capital_allocator.models import (
    CapitalPublic,
    PortfolioPublic,
    StrategyPublic,
    TargetPublic,
    plain,
)

ZERO = Decimal(0)


@dataclass(frozen=True)
class PortfolioState:
    """The portfolio row."""

    nav: Decimal
    cash_buffer_pct: Decimal
    currency: str
    precision: int
    version: int
    updated_by: str
    updated_at: datetime

    @property
    def allocatable(self) -> Decimal:
        """NAV minus the cash buffer on the allocation grid."""
        return allocatable_capital(self.nav, self.cash_buffer_pct, quantum(self.precision))

    def public(self) -> PortfolioPublic:
        """The API view."""
        return PortfolioPublic(
            nav=self.nav, cash_buffer_pct=self.cash_buffer_pct, currency=self.currency, precision=self.precision,
            allocatable=self.allocatable, version=self.version, updated_by=self.updated_by, updated_at=self.updated_at,
        )


@dataclass(frozen=True)
class StrategyState:
    """One strategies row: target, activity and capital."""

    strategy: str
    weight: Decimal
    min_capital: Decimal
    max_capital: Decimal | None
    min_weight: Decimal | None
    max_weight: Decimal | None
    active: bool
    allocated: Decimal
    reserved: Decimal
    allocation_id: int | None
    version: int
    created_at: datetime
    updated_at: datetime
    updated_by: str

    @property
    def available(self) -> Decimal:
        """``allocated - reserved``."""
        return self.allocated - self.reserved

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StrategyState:
        """From a database record (or any mapping with the column names)."""
        return cls(**{f.name: row[f.name] for f in fields(cls)})

    def to_wire(self) -> dict[str, Any]:
        """A JSON-safe dict (decimals as strings) for a change notification."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = plain(value)
            elif isinstance(value, datetime):
                value = value.isoformat()
            out[f.name] = value
        return out

    @classmethod
    def from_wire(cls, data: Mapping[str, Any]) -> StrategyState:
        """Inverse of :meth:`to_wire` (raises ``KeyError`` / ``ValueError`` / ``TypeError`` on a bad payload)."""

        def dec(name: str) -> Decimal | None:
            raw = data[name]
            return None if raw is None else Decimal(str(raw))

        return cls(
            strategy=str(data["strategy"]),
            weight=Decimal(str(data["weight"])),
            min_capital=Decimal(str(data["min_capital"])),
            max_capital=dec("max_capital"),
            min_weight=dec("min_weight"),
            max_weight=dec("max_weight"),
            active=bool(data["active"]),
            allocated=Decimal(str(data["allocated"])),
            reserved=Decimal(str(data["reserved"])),
            allocation_id=None if data["allocation_id"] is None else int(data["allocation_id"]),
            version=int(data["version"]),
            created_at=datetime.fromisoformat(data["created_at"]),
            updated_at=datetime.fromisoformat(data["updated_at"]),
            updated_by=str(data["updated_by"]),
        )

    def capital(self, currency: str | None) -> CapitalPublic:
        """The capital view."""
        return CapitalPublic(
            strategy=self.strategy, active=self.active, currency=currency, allocated=self.allocated,
            reserved=self.reserved, available=self.available, allocation_id=self.allocation_id,
            version=self.version, updated_at=self.updated_at,
        )

    def public(self, currency: str | None) -> StrategyPublic:
        """The full view: target plus capital."""
        return StrategyPublic(
            **self.capital(currency).model_dump(),
            target=TargetPublic(
                weight=self.weight, min_capital=self.min_capital, max_capital=self.max_capital,
                min_weight=self.min_weight, max_weight=self.max_weight,
            ),
            created_at=self.created_at,
            updated_by=self.updated_by,
        )


class CapitalCache:
    """Portfolio + strategies by id, with per-row version guards and pre-rendered capital JSON."""

    def __init__(self) -> None:
        """An empty, not yet loaded cache."""
        self.portfolio: PortfolioState | None = None
        self.strategies: dict[str, StrategyState] = {}
        self.loaded = False
        self._deleted: dict[str, int] = {}  # tombstones: id -> version of the delete
        self._json: dict[str, bytes] = {}

    @property
    def currency(self) -> str | None:
        """The portfolio currency (None before a portfolio is set)."""
        return self.portfolio.currency if self.portfolio else None

    def install(self, portfolio: PortfolioState | None, rows: list[StrategyState]) -> None:
        """Replace everything with a full reload's result."""
        self.portfolio = portfolio
        self.strategies = {r.strategy: r for r in rows}
        self._deleted.clear()
        self._json.clear()
        self.loaded = True

    def apply(self, state: StrategyState) -> bool:
        """Install ``state`` unless the cache already holds this row at the same or a newer version."""
        current = self.strategies.get(state.strategy)
        if current is not None and current.version >= state.version:
            return False
        if self._deleted.get(state.strategy, -1) >= state.version:
            return False
        self.strategies[state.strategy] = state
        self._deleted.pop(state.strategy, None)
        self._json.pop(state.strategy, None)
        return True

    def remove(self, strategy: str, version: int) -> bool:
        """Forget ``strategy`` deleted at ``version`` (ignored when the cache holds a newer row)."""
        current = self.strategies.get(strategy)
        if current is not None and current.version > version:
            return False
        self.strategies.pop(strategy, None)
        self._json.pop(strategy, None)
        self._deleted[strategy] = max(version, self._deleted.get(strategy, -1))
        return True

    def capital_json(self, strategy: str) -> bytes | None:
        """The strategy's capital document as JSON bytes (rendered once per version), or None."""
        body = self._json.get(strategy)
        if body is None:
            state = self.strategies.get(strategy)
            if state is None:
                return None
            body = self._json[strategy] = state.capital(self.currency).model_dump_json().encode()
        return body

    def fingerprint(self) -> tuple[int, int, int]:
        """(strategy count, sum of versions, portfolio version): equal to the database's when in step."""
        return (
            len(self.strategies),
            sum(s.version for s in self.strategies.values()),
            self.portfolio.version if self.portfolio else 0,
        )

    def totals(self) -> tuple[Decimal, Decimal]:
        """(allocated, reserved) over every strategy."""
        allocated = sum((s.allocated for s in self.strategies.values()), ZERO)
        reserved = sum((s.reserved for s in self.strategies.values()), ZERO)
        return allocated, reserved


def notification(kind: str, **data: Any) -> str:
    """The payload of a change notification (compact JSON, well below PostgreSQL's 8000-byte limit)."""
    return json.dumps({"k": kind, **data}, separators=(",", ":"))
