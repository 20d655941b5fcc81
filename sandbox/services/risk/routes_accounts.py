"""``/v1/accounts/{account}``: positions, P&L since UTC midnight, and the kill switch.

Read: any role. ``PUT .../kill-switch``: risk-officer, admin; persisted, audited,
and broadcast on NATS ``risk.killswitch.<account>`` so the OMS cancels open orders.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Path

from sandbox.services.risk import store_compliance
from sandbox.services.risk.killswitch import broadcast
from sandbox.services.risk.models import ACCOUNT_PATTERN, KillSwitchPublic, KillSwitchUpdate, PnlPublic, PositionsPublic
from sandbox.services.risk.roles import READERS, Writer
from sandbox.services.risk.runtime import Risk
from sandbox.services.risk.views import kill_switch_public, pnl_public, positions_public

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])

AccountPath = Annotated[str, Path(pattern=ACCOUNT_PATTERN, max_length=64, description="Account id.")]


@router.get("/{account}/positions", dependencies=[READERS], summary="An account's positions")
async def get_positions(account: AccountPath, risk: Risk) -> PositionsPublic:
    """Positions from OMS fills, valued at the current marks (empty list for an unknown account)."""
    return positions_public(risk.state, account, datetime.now(timezone.utc))


@router.get("/{account}/pnl", dependencies=[READERS], summary="An account's P&L since UTC midnight")
async def get_pnl(account: AccountPath, risk: Risk) -> PnlPublic:
    """Realised and unrealised P&L since UTC midnight, in quote currency."""
    return pnl_public(risk.state, account, datetime.now(timezone.utc))


@router.get("/{account}/kill-switch", dependencies=[READERS], summary="An account's kill-switch state")
async def get_kill_switch(account: AccountPath, risk: Risk) -> KillSwitchPublic:
    """The persisted state (inactive when never set)."""
    return kill_switch_public(account, risk.state.kill_switches.get(account))


@router.put("/{account}/kill-switch", summary="Set or clear an account's kill switch (risk-officer)")
async def put_kill_switch(account: AccountPath, body: KillSwitchUpdate, risk: Risk, who: Writer) -> KillSwitchPublic:
    """Persist, audit, then broadcast on NATS (``broadcast`` says whether that worked; active ones are re-sent)."""
    switch = await store_compliance.set_kill_switch(risk.pools["compliance"], who, account, body.active, body.reason)
    # This replica blocks orders now; the others on the NOTIFY a moment later.
    risk.state.kill_switches = {**risk.state.kill_switches, account: switch}
    await risk.refresh("kill_switch")
    sent = await broadcast(risk.nats, switch)
    risk.counters.broadcasts.labels("change", "ok" if sent else "failed").inc()
    return kill_switch_public(account, switch, broadcast=sent)
