"""Kill switches: risk-service's per-account switch, followed over NATS and read at start-up.

risk-service publishes ``{account, active, reason, at, ...}`` on
``risk.killswitch.<account>`` when a switch changes and re-sends active ones
periodically. While a switch is active the OMS rejects the account's new
orders with ``kill_switch_active`` (checked in memory, before any other check)
and cancels its open orders at the venue — on every active message, so a
re-broadcast also sweeps orders acknowledged in between. At start-up the OMS
asks risk-service (``GET /v1/accounts/{account}/kill-switch``) for every
account it has orders for, so a switch set while it was down holds at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sandbox.services.oms.upstream import UpstreamError, Upstreams

log = logging.getLogger("sandbox.services.oms.killswitch")

SUBJECT = "risk.killswitch.>"
PREFIX = "risk.killswitch."
STARTUP_CONCURRENCY = 8

OnActive = Callable[[str, dict[str, Any]], Awaitable[None]]


class KillSwitches:
    """Active switches by account, and what to do when one fires."""

    def __init__(self, on_active: OnActive | None = None) -> None:
        """``on_active(account, message)`` runs (as a task) for every active message."""
        self.active: dict[str, dict[str, Any]] = {}
        self.on_active = on_active
        self.messages = 0
        self._sub: Any = None
        self._tasks: set[asyncio.Task[None]] = set()

    def get(self, account: str) -> dict[str, Any] | None:
        """The active switch of ``account`` (None when off)."""
        return self.active.get(account)

    def is_active(self, account: str) -> bool:
        """Whether ``account``'s switch is on."""
        return account in self.active

    def apply(self, doc: dict[str, Any]) -> bool:
        """Apply one switch state; returns True when it is active (the caller then sweeps the account)."""
        account = doc.get("account")
        if not isinstance(account, str) or not account or not isinstance(doc.get("active"), bool):
            raise ValueError("a kill-switch message needs account (string) and active (boolean)")
        if doc["active"]:
            self.active[account] = {"reason": doc.get("reason"), "at": doc.get("at"), "set_by": doc.get("set_by")}
            return True
        if self.active.pop(account, None) is not None:
            log.info("kill switch cleared", extra={"account": account})
        return False

    async def subscribe(self, nats: Any) -> None:
        """Follow ``risk.killswitch.>`` on ``nats``."""
        self._sub = await nats.subscribe(SUBJECT, cb=self._on_message)

    async def _on_message(self, msg: Any) -> None:
        self.messages += 1
        try:
            doc = json.loads(msg.data)
            if not isinstance(doc, dict):
                raise ValueError("not an object")
            doc.setdefault("account", msg.subject.removeprefix(PREFIX))
            active = self.apply(doc)
        except ValueError as exc:
            log.warning("unreadable kill-switch message", extra={"subject": msg.subject, "error": str(exc)})
            return
        if active:
            log.warning("kill switch active", extra={"account": doc["account"], "reason": doc.get("reason")})
            self._fire(doc["account"], doc)

    def _fire(self, account: str, doc: dict[str, Any]) -> None:
        if self.on_active is None:
            return
        task = asyncio.get_running_loop().create_task(self._run(account, doc))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, account: str, doc: dict[str, Any]) -> None:
        assert self.on_active is not None
        try:
            await self.on_active(account, doc)
        except Exception:  # noqa: BLE001 - logged; the next re-broadcast tries again
            log.exception("kill-switch sweep failed", extra={"account": account})

    async def load(self, up: Upstreams, accounts: list[str]) -> int:
        """Ask risk-service for each account's switch; returns how many are active (risk unreachable: 0)."""
        if not up.configured("risk") or not accounts:
            return 0
        sem = asyncio.Semaphore(STARTUP_CONCURRENCY)

        async def one(account: str) -> None:
            async with sem:
                try:
                    reply = await up.call("risk", "GET", f"/v1/accounts/{account}/kill-switch")
                except UpstreamError as exc:
                    log.warning("kill-switch state unavailable", extra={"account": account, "error": str(exc)})
                    return
                if reply.status == 200 and isinstance(reply.body, dict):
                    body = {**reply.body, "account": account}
                    if isinstance(body.get("active"), bool) and self.apply(body):
                        self._fire(account, body)

        await asyncio.gather(*(one(a) for a in accounts))
        return len(self.active)

    async def close(self) -> None:
        """Stop following and wait (bounded) for running sweeps."""
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:  # noqa: BLE001 - the connection may be closing already
                pass
            self._sub = None
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=5)
