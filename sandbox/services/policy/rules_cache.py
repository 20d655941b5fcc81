"""Every account's rules in memory, kept in step with the database across replicas.

The writing replica applies its own write at once (read-your-writes). Other
replicas hear ``NOTIFY policy_rules_changed "<revision> <account>"`` on a
dedicated LISTEN connection and reload that account when the revision is the
next one, or everything when they missed one. A poll of ``rules_revision``
every ``poll_s`` catches lost notifications and re-opens a lost LISTEN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import asyncpg

from sandbox.services.policy import store
from sandbox.services.policy.account_rules import AccountRules

log = logging.getLogger("sandbox.services.policy.rules_cache")

_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class RulesCache:
    """``get(account)`` from memory; refreshed by writes, notifications and a revision poll."""

    def __init__(self, pool: asyncpg.Pool, dsn: str, *, poll_s: float) -> None:
        """``dsn`` opens the LISTEN connection."""
        self.pool = pool
        self.dsn = dsn
        self.poll_s = poll_s
        self.rules: dict[str, AccountRules] = {}
        self.revision = -1
        self._lock = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._poller: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    def get(self, account: str) -> AccountRules | None:
        """The account's rules, or None when it has none."""
        return self.rules.get(account)

    def __len__(self) -> int:
        """Accounts with rules."""
        return len(self.rules)

    async def start(self) -> None:
        """Load everything, then listen and poll."""
        await self.reload_all()
        await self._listen()
        self._poller = asyncio.create_task(self._poll_loop(), name="policy-rules-poll")

    async def stop(self) -> None:
        """Stop polling and close the LISTEN connection."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        for task in list(self._tasks):
            task.cancel()
        if self._listener is not None and not self._listener.is_closed():
            with contextlib.suppress(Exception):
                await self._listener.close(timeout=2)
        self._listener = None

    async def reload_all(self) -> int:
        """Replace the cache with the database's rules; returns the revision."""
        async with self._lock:
            rules, revision = await store.load_all(self.pool)
            self.rules = {r.account: r for r in rules}
            self.revision = revision
        log.info("rules loaded", extra={"accounts": len(rules), "revision": revision})
        return revision

    async def apply(self, account: str, rules: AccountRules | None, revision: int) -> None:
        """Apply one account's state as of ``revision`` (a write of this replica, or a notification)."""
        missed = False
        async with self._lock:
            if revision <= self.revision:
                return
            if rules is None:
                self.rules.pop(account, None)
            else:
                self.rules[account] = rules
            missed = revision != self.revision + 1
            if not missed:
                self.revision = revision
        if missed:  # another replica wrote in between: take everything
            await self.reload_all()

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is open."""
        return self._listener is not None and not self._listener.is_closed()

    async def _listen(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=5)
            await conn.add_listener(store.CHANNEL, self._notified)
        except _DB_ERRORS as exc:
            log.warning("cannot LISTEN for rule changes; relying on the revision poll", extra={"error": str(exc)})
            return
        self._listener = conn

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        revision_text, _, account = payload.partition(" ")
        try:
            revision = int(revision_text)
        except ValueError:
            return
        if revision > self.revision:
            task = asyncio.get_running_loop().create_task(self._refresh_account(account, revision))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _refresh_account(self, account: str, revision: int) -> None:
        try:
            if revision == self.revision + 1:
                await self.apply(account, await store.load_one(self.pool, account), revision)
            else:
                await self.reload_all()
        except _DB_ERRORS as exc:
            log.warning("rules refresh failed", extra={"account": account, "error": str(exc)})

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_s)
            try:
                revision = await store.current_revision(self.pool)
                if revision > self.revision:
                    await self.reload_all()
            except _DB_ERRORS as exc:
                log.warning("rules revision poll failed", extra={"error": str(exc)})
                continue
            if not self.listening:
                await self._listen()
