"""The trading venue: accounts, matching engine, status, faults, rate limits and tokens, in one object.

:class:`TradingVenue` is what the REST router, the executions WebSocket, the
admin API and the replay driver share.  It lives on the venue process's event
loop; nothing in it is thread-safe, and nothing needs to be.

Status follows Kraken's ``SystemStatus`` (``online``, ``maintenance``,
``cancel_only``, ``post_only``) for the whole venue, and each pair's
``status`` from AssetPairs (the same catalogue object the public REST serves,
so a change made here shows in ``/0/public/AssetPairs`` too):

===============  =====================================================  ================
state            AddOrder                                               trades happen
===============  =====================================================  ================
online           accepted                                               yes
maintenance      ``EService:Unavailable`` (cancels too)                 no
cancel_only      ``EService:Market in cancel_only mode``                no
post_only        only post-only limit orders, else                      no
                 ``EService:Market in post_only mode``
limit_only       (pair) market orders: ``EService:Market in limit_only  yes
                 mode``
===============  =====================================================  ================

:meth:`tick` runs the clocks: the dead man's switch (``CancelAllOrdersAfter``),
GTD expiry and timed faults; :meth:`start` runs it every 50 ms on the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from sandbox.venue.trading.accounts import MAX_NONCE, AccountRegistry, ApiKey
from sandbox.venue.trading.engine import MatchingEngine
from sandbox.venue.trading.errors import (
    CANCEL_ONLY,
    INVALID_KEY,
    INVALID_NONCE,
    INVALID_SIGNATURE,
    LIMIT_ONLY,
    POST_ONLY,
    UNAVAILABLE,
    KrakenError,
    invalid,
)
from sandbox.venue.trading.faults import FaultPlan, FaultSpec
from sandbox.venue.trading.orders import IdFactory, Order
from sandbox.venue.trading.pairs import TRADING_STATES, PairRegistry, PairSpec
from sandbox.venue.trading.ratelimit import RateLimiter
from sandbox.venue.trading.signing import verify

log = logging.getLogger("sandbox.venue.trading")

SYSTEM_STATES = ("online", "maintenance", "cancel_only", "post_only")
PAIR_STATES = ("online", "cancel_only", "post_only", "limit_only", "reduce_only")
#: a WebSocket token must be used within this many seconds (Kraken: 15 minutes)
TOKEN_TTL_S = 900
DMS_REASON = "Cancel all orders after timeout"
#: what the platform's own account (KRAKEN_CREDENTIALS_DIR) starts with
DEFAULT_BALANCES = {"ZUSD": "1000000", "ZEUR": "1000000", "XXBT": "10", "XETH": "100", "SOL": "1000",
                    "XXRP": "100000", "ADA": "100000"}
MAX_BODY = 65_536


class TradingVenue:
    """The simulated venue's trading side."""

    def __init__(
        self,
        catalog: Any,
        *,
        seed: int = 0,
        id_epoch: int = 0,
        clock: Callable[[], float] = time.time,
        usd_rates: Mapping[str, Any] | None = None,
        rate_limits: bool = True,
        tick_interval_s: float = 0.05,
    ) -> None:
        """A venue trading the pairs of ``catalog``.

        ``catalog`` is the :class:`~sandbox.venue.public_rest.AssetPairsCatalog` the
        public REST serves (anything with ``.pairs`` will do); ``seed`` fixes every
        random choice; ``id_epoch`` separates this incarnation's order and trade
        ids from an earlier one's of the same seed (see
        :mod:`sandbox.venue.trading.orders`); ``clock`` gives epoch seconds; ``usd_rates`` converts quote
        currencies without a USD pair (``{"ZEUR": "1.08"}``) for the 30-day volume.
        """
        self.catalog = catalog
        self.clock = clock
        self.usd_rates = {k: Decimal(str(v)) for k, v in (usd_rates or {}).items()}
        self.tick_interval_s = tick_interval_s
        self._initial_pair_status = {k: e.get("status", "online") for k, e in catalog.pairs.items()}
        if not isinstance(getattr(catalog, "delisted", None), set):
            catalog.delisted = set()
        self.pairs = PairRegistry(catalog.pairs, catalog.delisted)
        self.limiter = RateLimiter(enabled=rate_limits)
        #: called with ``(status, pair key or None)`` after every status change (e.g. to tell the feed)
        self.status_listeners: list[Callable[[str, str | None], None]] = []
        #: called with no argument to drop the market-data connections (``ws_disconnect`` faults)
        self.market_disconnect_hooks: list[Callable[[], Any]] = []
        self._task: asyncio.Task[None] | None = None
        from sandbox.venue.trading.executions_ws import ExecutionsHub

        self.hub = ExecutionsHub(self)
        from sandbox.venue.trading.stepper import ReplayStepper

        #: scenario-driven replay cursors (``/admin/market/replay``)
        self.stepper = ReplayStepper(lambda: self.engine)
        self.seed = seed
        self.id_epoch = id_epoch
        self.ids: IdFactory | None = None
        self._build(seed)

    def _build(self, seed: int, engine: MatchingEngine | None = None) -> None:
        self.seed = seed
        self.system_status = "online"
        self.accounts = AccountRegistry()
        self.ids = IdFactory(seed, self.id_epoch, after=self.ids)
        self.faults = FaultPlan(seed)
        self.tokens: dict[str, tuple[str, float, bool]] = {}
        self.engine = MatchingEngine(self.pairs, self.ids, self.clock, self.can_trade, self.usd_rates)
        if engine is not None:
            for key, market in engine._markets.items():
                if market.replay_book is not None:
                    self.engine.market(self.pairs.specs[key]).replay_book = market.replay_book
        self.engine.listeners.append(self.hub.publish)
        self.limiter.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    def reset(self, seed: int | None = None) -> None:
        """Start afresh: no accounts, orders, faults or synthetic books; statuses as loaded; ``seed`` (or the same)."""
        self.hub.disconnect_all()
        self.stepper.reset()
        for key, status in self._initial_pair_status.items():
            self.catalog.pairs[key]["status"] = status
        self.catalog.delisted.clear()
        self._build(self.seed if seed is None else seed, self.engine)
        log.info("trading venue reset (seed %s)", self.seed)

    async def start(self) -> None:
        """Run :meth:`tick` every ``tick_interval_s`` on the current loop (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._ticker(), name="venue-trading-ticker")

    async def stop(self) -> None:
        """Stop the ticker and close every executions connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.hub.close_all()

    async def _ticker(self) -> None:
        while True:
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - one bad tick must not stop the clocks
                log.exception("venue tick failed")
            await asyncio.sleep(self.tick_interval_s)

    # -- the replay driver's interface -----------------------------------------------------------

    def on_book(self, symbol: str, book: Any) -> None:
        """The replay applied a book message for ``symbol`` (v2 ``BTC/USD``, v1 ``XBT/USD`` or a pair key)."""
        self.engine.on_book(symbol, book)

    def on_trade(self, symbol: str, price: Any, qty: Any, side: str) -> None:
        """The replay played a public trade (``side`` = the taker's side)."""
        self.engine.on_trade(symbol, price, qty, side)

    # -- status ------------------------------------------------------------------------------------

    def can_trade(self, pair_key: str) -> bool:
        """True when trades may happen on ``pair_key`` now."""
        return self.system_status == "online" and self.pairs.status(pair_key) in TRADING_STATES

    def set_status(self, status: str, pair: PairSpec | None = None) -> str:
        """Set the venue's (or one pair's) status; returns the previous one."""
        allowed = PAIR_STATES if pair is not None else SYSTEM_STATES
        if status not in allowed:
            raise invalid("status")
        if pair is None:
            previous, self.system_status = self.system_status, status
        else:
            previous = self.pairs.status(pair.key)
            self.catalog.pairs[pair.key]["status"] = status
        for listener in list(self.status_listeners):
            listener(status, pair.key if pair else None)
        for spec in ([pair] if pair is not None else list(self.pairs)):
            if self.can_trade(spec.key):
                self.engine.recheck(spec)
        log.info("status of %s: %s -> %s", pair.altname if pair else "the venue", previous, status)
        return previous

    def set_listed(self, pair: PairSpec, listed: bool) -> bool:
        """List or delist a pair; returns whether it was listed.

        A delisted pair leaves public ``AssetPairs`` and the private API answers
        ``EQuery:Unknown asset pair`` for it, as when Kraken delists a pair (so
        universe-service's next sync marks it delisted); its orders, book and
        status are kept for a relisting.
        """
        previous = pair.key not in self.catalog.delisted
        if listed:
            self.catalog.delisted.discard(pair.key)
        else:
            self.catalog.delisted.add(pair.key)
        log.info("%s %s", pair.altname, "listed" if listed else "delisted")
        return previous

    def check_add(self, pair: PairSpec, ordertype: str, post_only: bool) -> None:
        """Raise the ``EService`` error Kraken gives for a new order in the current status, if any."""
        pair_status = self.pairs.status(pair.key)
        if self.system_status == "maintenance":
            raise KrakenError(UNAVAILABLE)
        if "cancel_only" in (self.system_status, pair_status):
            raise KrakenError(CANCEL_ONLY)
        if "post_only" in (self.system_status, pair_status) and not (ordertype == "limit" and post_only):
            raise KrakenError(POST_ONLY)
        if pair_status == "limit_only" and ordertype == "market":
            raise KrakenError(LIMIT_ONLY)

    def check_cancel(self) -> None:
        """Cancels fail only in maintenance."""
        if self.system_status == "maintenance":
            raise KrakenError(UNAVAILABLE)

    # -- authentication -------------------------------------------------------------------------

    def authenticate(self, path: str, api_key: str | None, api_sign: str | None, body: bytes,
                     content_type: str = "") -> tuple[ApiKey, dict[str, Any]]:
        """Check a private call's key, signature and nonce; returns the key and the parsed parameters."""
        key = self.accounts.key(api_key or "")
        if key is None:
            raise KrakenError(INVALID_KEY)
        params = parse_body(body, content_type)
        raw_nonce = params.get("nonce")
        nonce_text = str(raw_nonce) if raw_nonce is not None else ""
        if not nonce_text.isdigit() or int(nonce_text) > MAX_NONCE:
            raise KrakenError(INVALID_NONCE)
        if not verify(path, nonce_text, body, key.secret, api_sign or ""):
            raise KrakenError(INVALID_SIGNATURE)
        if not key.nonces.accept(int(nonce_text)):
            raise KrakenError(INVALID_NONCE)
        return key, params

    # -- WebSocket tokens ------------------------------------------------------------------------

    def issue_token(self, key: ApiKey) -> dict[str, Any]:
        """A ``GetWebSocketsToken`` result for the key's account."""
        token = secrets.token_urlsafe(32)
        self.tokens[token] = (key.account.id, self.clock(), False)
        return {"token": token, "expires": TOKEN_TTL_S}

    def redeem_token(self, token: str) -> Any:
        """The account a token belongs to (used within 15 minutes, or already used), or ``None``."""
        entry = self.tokens.get(token or "")
        if entry is None:
            return None
        account_id, issued, used = entry
        if not used and self.clock() - issued > TOKEN_TTL_S:
            return None
        self.tokens[token] = (account_id, issued, True)
        return self.accounts.get(account_id)

    # -- clocks ----------------------------------------------------------------------------------

    def cancel_all_after(self, account: Any, timeout: int) -> dict[str, str]:
        """Arm (or with 0 disarm) the account's dead man's switch."""
        from sandbox.venue.trading.private_api import rfc3339_s

        now = self.clock()
        account.cancel_after = now + timeout if timeout > 0 else None
        return {"currentTime": rfc3339_s(now),
                "triggerTime": rfc3339_s(account.cancel_after) if account.cancel_after else "0"}

    def tick(self) -> None:
        """Fire due dead man's switches, GTD expiries and timed faults."""
        now = self.clock()
        for account in self.accounts:
            if account.cancel_after is not None and now >= account.cancel_after:
                account.cancel_after = None
                orders = list(account.open_orders.values())
                for order in orders:
                    self.engine.cancel(order, DMS_REASON)
                log.info("dead man's switch of %s cancelled %d orders", account.id, len(orders))
            for order in [o for o in account.open_orders.values() if o.expiretm is not None and o.expiretm <= now]:
                self.engine.expire(order)
        for action, rule in self.faults.due(now):
            self._timed_fault(action, rule)

    def _timed_fault(self, action: str, rule: Any) -> None:
        spec: FaultSpec = rule.spec
        if spec.action == "ws_disconnect":
            rule.applied = True
            rule.fired += 1
            if spec.scope in ("executions", "all"):
                key = self.accounts.key(spec.api_key) if spec.api_key else None
                self.hub.disconnect(key.account.id if key else None)
            if spec.scope in ("market", "all"):
                for hook in list(self.market_disconnect_hooks):
                    hook()
            return
        pair = self.pairs.find(spec.pair) if spec.pair else None
        if spec.pair and pair is None:
            rule.applied = rule.restored = True
            return
        if action == "apply":
            rule.applied = True
            rule.fired += 1
            rule.previous_status = self.set_status(spec.status or "online", pair)
        else:
            rule.restored = True
            self.set_status(rule.previous_status or "online", pair)

    # -- bootstrap -------------------------------------------------------------------------------

    def account_from_credentials(self, directory: str | Path, balances: Mapping[str, Any] | None = None) -> Any:
        """An account for the key pair in ``directory`` (files ``api_key``, ``api_secret``: the platform's
        ``KRAKEN_CREDENTIALS_DIR``), funded with ``balances`` (default :data:`DEFAULT_BALANCES`).

        Returns ``None`` when the files are missing or empty; the same key twice is created once.
        """
        directory = Path(directory)
        try:
            key = (directory / "api_key").read_text(encoding="utf-8").strip()
            secret = (directory / "api_secret").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not key or not secret:
            return None
        existing = self.accounts.key(key)
        if existing is not None:
            return existing.account
        account, _ = self.accounts.create(name="platform", balances=dict(balances or DEFAULT_BALANCES),
                                          api_key=key, api_secret=secret)
        log.info("account %s created for the key pair in %s", account.id, directory)
        return account

    # -- views -----------------------------------------------------------------------------------

    def open_order(self, account: Any, txid: str) -> Order | None:
        """An open order of ``account`` by txid."""
        return account.open_orders.get(txid)

    def summary(self) -> dict[str, Any]:
        """``GET /admin/trading``: the venue at a glance."""
        now = self.clock()
        return {
            "seed": self.seed,
            "id_epoch": self.id_epoch,
            "system_status": self.system_status,
            "pair_status": {k: self.pairs.status(k) for k in self.pairs.specs},
            "accounts": [a.summary(now) for a in self.accounts],
            "faults": self.faults.listing(),
            "executions_connections": self.hub.connection_count(),
        }


def parse_body(body: bytes, content_type: str = "") -> dict[str, Any]:
    """A private call's parameters: form-encoded (Kraken's documented format) or a JSON object."""
    if len(body) > MAX_BODY:
        raise invalid()
    if "json" in content_type.lower() or body[:1] == b"{":
        try:
            doc = json.loads(body or b"{}", parse_float=Decimal)
        except ValueError as exc:
            raise invalid() from exc
        if not isinstance(doc, dict):
            raise invalid()
        return doc
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid() from exc
    return dict(parse_qsl(text, keep_blank_values=True))
