"""Domain records -> API models (the Public side of each resource)."""

from __future__ import annotations

from datetime import date, datetime, time, timezone

from sandbox.services.risk.domain import (
    AccountLimits,
    EsgExclusion,
    KillSwitch,
    LimitSet,
    PositionLimit,
    RestrictedEntry,
)
from sandbox.services.risk.models import (
    AccountLimitsFields,
    AccountLimitsPublic,
    CheckOrderResponse,
    EsgExclusionPublic,
    KillSwitchPublic,
    MarkPublic,
    PnlPublic,
    PositionLimitApplied,
    PositionLimitPublic,
    PositionPublic,
    PositionsPublic,
    RestrictedPublic,
    ViolationPublic,
)
from sandbox.services.risk.positions import ZERO, Mark, Position
from sandbox.services.risk.rules import Assessment, Order, RiskView, valuations


def restricted_public(entry: RestrictedEntry) -> RestrictedPublic:
    """A restricted-list entry as served."""
    return RestrictedPublic(
        id=entry.id, kind=entry.kind, value=entry.value, account=entry.account,
        scope="global" if entry.account is None else "account", reason=entry.reason,
        created_at=entry.created_at, created_by=entry.created_by, updated_at=entry.updated_at,
        updated_by=entry.updated_by,
    )


def esg_public(exclusion: EsgExclusion) -> EsgExclusionPublic:
    """An ESG exclusion as served."""
    return EsgExclusionPublic(
        asset=exclusion.asset, reason=exclusion.reason, score=exclusion.score,
        updated_at=exclusion.updated_at, updated_by=exclusion.updated_by,
    )


def _fields(limits: AccountLimits) -> AccountLimitsFields:
    return AccountLimitsFields(
        gross_exposure=limits.gross_exposure, daily_loss=limits.daily_loss,
        concentration_pct=limits.concentration_pct, concentration_floor=limits.concentration_floor,
    )


def account_limits_public(account: str, own: AccountLimits, limits: LimitSet) -> AccountLimitsPublic:
    """An account's own limits plus the effective ones (defaults filled in)."""
    effective = limits.effective(account) if account != "*" else own
    return AccountLimitsPublic(
        account=account, **_fields(own).model_dump(), updated_at=own.updated_at, updated_by=own.updated_by,
        effective=_fields(effective),
    )


def position_limit_public(limit: PositionLimit) -> PositionLimitPublic:
    """A position limit as served."""
    return PositionLimitPublic(
        account=limit.account, symbol=limit.symbol, max_position=limit.max_position,
        updated_at=limit.updated_at, updated_by=limit.updated_by,
    )


def kill_switch_public(account: str, switch: KillSwitch | None, broadcast: bool | None = None) -> KillSwitchPublic:
    """A kill-switch state (inactive, never set, when ``switch`` is None)."""
    if switch is None:
        return KillSwitchPublic(account=account, active=False, reason="", at=None, set_by="", broadcast=broadcast)
    return KillSwitchPublic(
        account=account, active=switch.active, reason=switch.reason, at=switch.at, set_by=switch.set_by,
        broadcast=broadcast,
    )


def mark_public(mark: Mark) -> MarkPublic:
    """A mark as served."""
    return MarkPublic(symbol=mark.symbol, price=mark.price, at=mark.at, source=mark.source, day_open=mark.day_open)


def positions_public(view: RiskView, account: str, now: datetime) -> PositionsPublic:
    """An account's positions valued at the current marks."""
    values = valuations(view, account, now.date())
    book: dict[str, Position] = dict(view.positions.get(account, {}))
    items = [
        PositionPublic(
            symbol=v.symbol, qty=v.qty, avg_cost=v.avg_cost, mark=v.mark, exposure=v.exposure,
            unrealised=v.unrealised, realised=v.realised, realised_today=v.realised_today, day_pnl=v.day_pnl,
            updated_at=book[symbol].updated_at,
        )
        for symbol, v in sorted(values.items())
    ]
    return PositionsPublic(
        account=account, positions=items, gross_exposure=sum((v.exposure for v in values.values()), ZERO), as_of=now,
    )


def pnl_public(view: RiskView, account: str, now: datetime) -> PnlPublic:
    """An account's P&L since UTC midnight."""
    today: date = now.date()
    values = valuations(view, account, today)
    realised_today = sum((v.realised_today for v in values.values()), ZERO)
    day_pnl = sum((v.day_pnl for v in values.values()), ZERO)
    return PnlPublic(
        account=account,
        since=datetime.combine(today, time(0), tzinfo=timezone.utc),
        realised_today=realised_today,
        unrealised_today=day_pnl - realised_today,
        day_pnl=day_pnl,
        unrealised=sum((v.unrealised for v in values.values()), ZERO),
        realised_total=sum((v.realised for v in values.values()), ZERO),
        gross_exposure=sum((v.exposure for v in values.values()), ZERO),
        daily_loss_limit=view.limits.effective(account).daily_loss,
        by_symbol={s: v.day_pnl for s, v in sorted(values.items())},
        as_of=now,
    )


def check_public(order: Order, result: Assessment, client_order_id: str | None, now: datetime) -> CheckOrderResponse:
    """The answer of ``POST /v1/check-order``."""
    return CheckOrderResponse(
        allowed=result.allowed,
        violations=[ViolationPublic(code=v.code, rule=v.rule, message=v.message, detail=v.detail) for v in result.violations],
        account=order.account, strategy=order.strategy, symbol=order.symbol, side=order.side, qty=order.qty,
        client_order_id=client_order_id, price=result.price, price_source=result.price_source,  # type: ignore[arg-type]
        notional=result.notional, reduces_position=result.reduces, position=result.position,
        projected_position=result.projected_position, gross_exposure=result.gross_exposure,
        projected_gross_exposure=result.projected_gross_exposure, day_pnl=result.day_pnl,
        capital_available=result.capital_available, checked_at=now,
        position_limit=PositionLimitApplied(
            limit=pl.limit, base_limit=pl.base_limit, factor=pl.factor, scaled=pl.scaled, reason=pl.reason,
            volatility_1m=pl.volatility, reference_volatility=pl.reference, volatility_as_of=pl.volatility_as_of,
        ) if (pl := result.position_limit) is not None else None,
    )
