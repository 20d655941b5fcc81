"""Kill-switch broadcast on NATS: ``risk.killswitch.<account>`` on every change, active ones re-sent.

The document is ``{account, active, reason, at, set_by, rebroadcast}``. The OMS
cancels the account's open orders when it receives ``active: true``. Active
switches are re-broadcast at start-up and periodically, so an OMS replica that
missed the change (restart, NATS reconnect) converges. Subscribe with
``risk.killswitch.>``: an account id containing ``.`` spans several tokens.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sandbox.services.risk.domain import KillSwitch

log = logging.getLogger("sandbox.services.risk.killswitch")

SUBJECT_PREFIX = "risk.killswitch."
FLUSH_TIMEOUT_S = 2.0


def subject(account: str) -> str:
    """The NATS subject of an account's kill switch."""
    return SUBJECT_PREFIX + account


async def broadcast(nats: Any, switch: KillSwitch, *, rebroadcast: bool = False) -> bool:
    """Publish ``switch`` and wait until the server has it; False when NATS is absent or fails."""
    if nats is None:
        return False
    payload = json.dumps(switch.message(rebroadcast=rebroadcast), separators=(",", ":")).encode()
    try:
        await nats.publish(subject(switch.account), payload)
        await nats.flush(timeout=FLUSH_TIMEOUT_S)
    except Exception as exc:  # the state is persisted; the periodic re-broadcast retries
        log.warning("kill switch broadcast failed", extra={"account": switch.account, "error": f"{type(exc).__name__}: {exc}"})
        return False
    return True


async def rebroadcast_loop(
    nats: Any,
    active: Callable[[], Iterable[KillSwitch]],
    period_s: float,
    stop: asyncio.Event,
    on_sent: Callable[[bool], None],
) -> None:
    """Re-send every active switch now and then every ``period_s`` until ``stop`` is set."""
    while not stop.is_set():
        for switch in list(active()):
            on_sent(await broadcast(nats, switch, rebroadcast=True))
        if period_s <= 0:
            return
        try:
            await asyncio.wait_for(stop.wait(), period_s)
        except TimeoutError:
            pass
