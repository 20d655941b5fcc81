"""The capital cache and its sync logic (no servers): version guards, notifications, reload buffering, models."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from decimal import Decimal as D
from typing import Any

import pytest
from pydantic import ValidationError

from sandbox.services.capital_allocator import repository
from sandbox.services.capital_allocator.cache import CapitalCache, PortfolioState, StrategyState, notification
from sandbox.services.capital_allocator.models import (
    ConsumeRequest,
    PortfolioWrite,
    RebalanceRequest,
    ReservationCreate,
    TargetWrite,
)
from sandbox.services.capital_allocator.sync import CacheSync

T0 = datetime(2025, 1, 2, 3, 4, 5, 123456, tzinfo=timezone.utc)


def strategy(name: str = "s1", version: int = 1, **over: Any) -> StrategyState:
    base: dict[str, Any] = dict(
        strategy=name, weight=D("1.5"), min_capital=D("10"), max_capital=None, min_weight=None,
        max_weight=D("0.5"), active=True, allocated=D("1000.00"), reserved=D("250.5"), allocation_id=7,
        version=version, created_at=T0, updated_at=T0, updated_by="risk",
    )
    base.update(over)
    return StrategyState(**base)


def portfolio(version: int = 1, currency: str = "USD") -> PortfolioState:
    return PortfolioState(nav=D("10000"), cash_buffer_pct=D("5"), currency=currency, precision=2, version=version,
                          updated_by="admin", updated_at=T0)


def test_wire_format_round_trips_exactly() -> None:
    s = strategy(max_capital=D("1E+3"), min_weight=None)
    data = json.loads(notification("s", row=s.to_wire()))
    assert data["k"] == "s" and data["row"]["max_capital"] == "1000" and data["row"]["reserved"] == "250.5"
    assert StrategyState.from_wire(data["row"]) == s
    assert len(notification("s", row=strategy("x" * 64).to_wire())) < 8000


def test_capital_document_is_rendered_once_per_version_with_available() -> None:
    cache = CapitalCache()
    cache.install(portfolio(), [strategy()])
    body = cache.capital_json("s1")
    assert body is cache.capital_json("s1")
    doc = json.loads(body or b"")
    assert doc["allocated"] == "1000.00" and doc["reserved"] == "250.5" and doc["available"] == "749.50"
    assert doc["currency"] == "USD" and doc["active"] is True and doc["allocation_id"] == 7
    assert cache.apply(strategy(version=2, reserved=D("1100")))
    assert json.loads(cache.capital_json("s1") or b"")["available"] == "-100.00"  # shrunk below reservations
    assert cache.capital_json("nope") is None


def test_older_versions_never_overwrite_newer_ones() -> None:
    cache = CapitalCache()
    cache.install(None, [strategy(version=5)])
    assert not cache.apply(strategy(version=5, reserved=D(0)))
    assert not cache.apply(strategy(version=4, reserved=D(0)))
    assert cache.strategies["s1"].reserved == D("250.5")
    assert cache.apply(strategy(version=6, reserved=D(0)))
    assert cache.strategies["s1"].reserved == 0


def test_deletes_leave_tombstones_against_stale_rows() -> None:
    cache = CapitalCache()
    cache.install(None, [strategy(version=5)])
    assert not cache.remove("s1", 4)  # older than what we hold
    assert cache.remove("s1", 9)
    assert "s1" not in cache.strategies
    assert not cache.apply(strategy(version=8))  # a late notification from before the delete
    assert cache.apply(strategy(version=10))  # re-registered after it
    assert cache.fingerprint() == (1, 10, 0)


def test_fingerprint_and_totals() -> None:
    cache = CapitalCache()
    cache.install(portfolio(version=3), [strategy("a", 4), strategy("b", 6, allocated=D(5), reserved=D(1))])
    assert cache.fingerprint() == (2, 10, 3)
    assert cache.totals() == (D("1005.00"), D("251.5"))


class FakePool:
    """Stands in for the pool: ``load_all`` is monkeypatched."""


def test_notifications_during_a_reload_are_replayed_on_top_of_it(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = CapitalCache()
    sync = CacheSync(FakePool(), None, cache, poll_s=60)  # type: ignore[arg-type]
    reasons: list[str] = []
    sync.on_reload = reasons.append

    async def scenario() -> None:
        gate = asyncio.Event()
        calls = 0

        async def load_all(_pool: Any) -> tuple[Any, list[StrategyState]]:
            nonlocal calls
            calls += 1
            if calls == 1:
                # While "reading", a newer change and an older one arrive, and a full-reload request.
                sync._notified(None, 0, repository.CHANNEL, notification("s", row=strategy(version=9).to_wire()))
                sync._notified(None, 0, repository.CHANNEL, notification("s", row=strategy("b", 1).to_wire()))
                sync._notified(None, 0, repository.CHANNEL, notification("full"))
                gate.set()
                return portfolio(), [strategy(version=7), strategy("b", 3)]
            return portfolio(version=2), [strategy(version=9), strategy("b", 3)]

        monkeypatch.setattr(repository, "load_all", load_all)
        await sync.reload("test")
        assert gate.is_set() and calls == 2  # the full request made it read again
        assert cache.strategies["s1"].version == 9 and cache.strategies["b"].version == 3
        assert cache.portfolio is not None and cache.portfolio.version == 2
        assert reasons == ["notify-during-reload"]
        # Outside a reload: a strategy row applies directly, garbage asks for a reload.
        sync._notified(None, 0, repository.CHANNEL, notification("d", s="b", v=4))
        assert "b" not in cache.strategies
        sync._notified(None, 0, repository.CHANNEL, '{"k": "s", "row": {"strategy": "x"}}')
        await asyncio.gather(*sync._tasks)
        assert calls == 3 and reasons[-1] == "bad-notification"

    asyncio.run(scenario())


# ---------------------------------------------------------------------------- request models


def test_bodies_forbid_unknown_fields_and_bound_every_number() -> None:
    with pytest.raises(ValidationError):
        PortfolioWrite.model_validate({"nav": "1", "extra": 1})
    with pytest.raises(ValidationError):
        PortfolioWrite.model_validate({"nav": "1e16"})
    with pytest.raises(ValidationError):
        PortfolioWrite.model_validate({"nav": "NaN"})
    with pytest.raises(ValidationError):
        PortfolioWrite.model_validate({"nav": "1.000000001"})  # 9 decimal places
    with pytest.raises(ValidationError):
        PortfolioWrite.model_validate({"nav": "1", "cash_buffer_pct": "100.5"})
    with pytest.raises(ValidationError):
        PortfolioWrite.model_validate({"nav": "1", "precision": 9})
    p = PortfolioWrite.model_validate({"nav": 1000.5, "currency": "usd"})
    assert p.nav == D("1000.5") and p.currency == "USD" and p.precision == 2


def test_target_bounds_must_be_ordered() -> None:
    with pytest.raises(ValidationError, match="max_capital must be >= min_capital"):
        TargetWrite.model_validate({"weight": 1, "min_capital": "10", "max_capital": "5"})
    with pytest.raises(ValidationError, match="max_weight must be >= min_weight"):
        TargetWrite.model_validate({"weight": 1, "min_weight": "0.5", "max_weight": "0.4"})
    with pytest.raises(ValidationError):
        TargetWrite.model_validate({"weight": -1})
    with pytest.raises(ValidationError):
        TargetWrite.model_validate({"weight": 1, "max_weight": "1.5"})
    t = TargetWrite.model_validate({"weight": "0", "min_capital": 5})
    assert t.weight == 0 and t.max_capital is None


def test_reservation_bodies() -> None:
    with pytest.raises(ValidationError):
        ReservationCreate.model_validate({"order_id": "o1", "amount": "0"})
    with pytest.raises(ValidationError):
        ReservationCreate.model_validate({"order_id": "bad id", "amount": "1"})
    with pytest.raises(ValidationError):
        ReservationCreate.model_validate({"order_id": "o" * 129, "amount": "1"})
    assert ReservationCreate.model_validate({"order_id": "ord-1:x", "amount": "1.5"}).account is None
    with pytest.raises(ValidationError):
        ConsumeRequest.model_validate({"consumed_total": "-1"})
    with pytest.raises(ValidationError):
        RebalanceRequest.model_validate({"reason": "line\nbreak"})
