"""The venue's admin API for scenarios and tests, under ``/admin``: not Kraken's, and loopback only.

Every route answers 403 unless the client address is in the allowed networks
(loopback by default; the docker runtime may add its bridge network).  Bodies
and answers are plain JSON, numbers as strings.

=====================================  ==========================================================
``GET /admin/trading``                 seed, statuses, accounts, faults, executions connections
``POST /admin/accounts``               create an account and key: ``{"balances": {"ZUSD": "10000"},
                                       "tier", "volume_30d", "api_key", "api_secret", "nonce_window",
                                       "name"}`` -> ``{"account_id", "api_key", "api_secret", ...}``
``GET /admin/accounts[/{id}]``         balances, holds, volume, open orders
``POST /admin/accounts/{id}/balances`` ``{"ZUSD": "500"}`` adds to balances (``"set": true`` replaces)
``POST /admin/accounts/{id}/keys``     another API key for the account
``GET|PUT /admin/status``              ``{"status": "online|maintenance|cancel_only|post_only"}``
``PUT /admin/status/{pair}``           one pair's status (``online``, ``cancel_only``, ``post_only``,
                                       ``limit_only``, ``reduce_only``)
``GET|POST|DELETE /admin/faults``      fault rules (see :mod:`.faults`); ``DELETE /admin/faults/{id}``
``GET|PUT|PATCH|DELETE /admin/book/{pair}``  the book the engine trades against: ``PUT`` a synthetic
                                       snapshot ``{"bids": [[price, qty]...], "asks": [...]}``, ``PATCH``
                                       level changes (qty 0 deletes), ``DELETE`` back to the replay
``POST /admin/trades``                 print a public trade ``{"pair", "price", "qty", "side"}``
``POST /admin/seed``                   ``{"seed": 42}``: reset with a new seed
``POST /admin/reset``                  ``{"seed": null}``: forget accounts, orders, faults, books
``POST /admin/tick``                   run the clocks now (dead man's switch, GTD, timed faults)
=====================================  ==========================================================
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from sandbox.venue.trading.errors import KrakenError
from sandbox.venue.trading.faults import FaultSpec
from sandbox.venue.trading.pairs import PairSpec

if TYPE_CHECKING:
    from sandbox.venue.trading.venue import TradingVenue

LOOPBACK = ("127.0.0.0/8", "::1/128")


class AccountCreate(BaseModel):
    """``POST /admin/accounts``."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    balances: dict[str, str | int | float] = Field(default_factory=dict)
    tier: str = "intermediate"
    volume_30d: str | int | float = 0
    api_key: str | None = Field(None, min_length=8, max_length=256)
    api_secret: str | None = Field(None, min_length=8, max_length=512)
    nonce_window: int = Field(0, ge=0, le=10**12)


class KeyCreate(BaseModel):
    """``POST /admin/accounts/{id}/keys``."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    api_key: str | None = Field(None, min_length=8, max_length=256)
    api_secret: str | None = Field(None, min_length=8, max_length=512)
    nonce_window: int = Field(0, ge=0, le=10**12)


class StatusBody(BaseModel):
    """``PUT /admin/status[/{pair}]``."""

    status: str


class BookBody(BaseModel):
    """A synthetic book or level changes."""

    bids: list[tuple[str | int | float, str | int | float]] = Field(default_factory=list)
    asks: list[tuple[str | int | float, str | int | float]] = Field(default_factory=list)


class TradeBody(BaseModel):
    """``POST /admin/trades``: a public trade printed into the market."""

    pair: str
    price: str | int | float
    qty: str | int | float
    side: str = Field(pattern="^(buy|sell)$")


class SeedBody(BaseModel):
    """``POST /admin/seed`` and ``/admin/reset``."""

    seed: int | None = None


def loopback_guard(networks: Iterable[str] = LOOPBACK) -> Any:
    """A dependency refusing (403) clients outside ``networks``."""
    allowed = [ipaddress.ip_network(n, strict=False) for n in networks]

    def guard(request: Request) -> None:
        host = request.client.host if request.client else ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        if address is None or not any(address in net for net in allowed):
            raise HTTPException(403, "the venue admin API answers only on loopback")

    return guard


def _decimal(value: Any, what: str) -> Decimal:
    try:
        result = Decimal(str(value))
    except InvalidOperation as exc:
        raise HTTPException(400, f"{what}: not a number: {value!r}") from exc
    if not result.is_finite():
        raise HTTPException(400, f"{what}: not a finite number")
    return result


def admin_router(venue: TradingVenue, networks: Iterable[str] = LOOPBACK) -> APIRouter:
    """The ``/admin`` router of the trading side."""
    router = APIRouter(prefix="/admin", tags=["venue admin (not Kraken)"],
                       dependencies=[Depends(loopback_guard(networks))])

    def pair_of(name: str) -> PairSpec:
        spec = venue.pairs.find(name)
        if spec is None:
            raise HTTPException(404, f"unknown pair {name!r}")
        return spec

    def account_of(account_id: str) -> Any:
        account = venue.accounts.get(account_id)
        if account is None:
            raise HTTPException(404, f"no account {account_id!r}")
        return account

    def fail(exc: KrakenError) -> HTTPException:
        return HTTPException(400, "; ".join(exc.errors))

    @router.get("/trading")
    async def overview() -> dict[str, Any]:
        """The venue at a glance."""
        return venue.summary()

    @router.post("/accounts", status_code=201)
    async def create_account(body: AccountCreate) -> dict[str, Any]:
        """Create an account with one API key; the secret is shown here only."""
        try:
            account, key = venue.accounts.create(
                name=body.name, balances=body.balances, tier=body.tier, volume_30d=body.volume_30d,
                api_key=body.api_key, api_secret=body.api_secret, nonce_window=body.nonce_window,
                normalise_asset=venue.pairs.asset_code,
            )
        except KrakenError as exc:
            raise fail(exc) from exc
        return {**account.summary(venue.clock()), "api_key": key.key, "api_secret": key.secret}

    @router.get("/accounts")
    async def list_accounts() -> list[dict[str, Any]]:
        """Every account."""
        return [a.summary(venue.clock()) for a in venue.accounts]

    @router.get("/accounts/{account_id}")
    async def get_account(account_id: str) -> dict[str, Any]:
        """One account, with its keys and open orders."""
        account = account_of(account_id)
        keys = [k.public() for k in venue.accounts.keys.values() if k.account is account]
        orders = [{"txid": o.txid, "pair": o.pair.key, "side": o.side, "price": str(o.price), "vol": str(o.vol),
                   "vol_exec": str(o.vol_exec), "ahead": str(o.ahead)} for o in account.open_orders.values()]
        return {**account.summary(venue.clock()), "keys": keys, "open": orders}

    @router.post("/accounts/{account_id}/balances")
    async def fund(account_id: str, body: dict[str, Any] = Body(...)) -> dict[str, Any]:  # noqa: B008
        """Add to (or with ``"set": true`` replace) balances."""
        account = account_of(account_id)
        replace = bool(body.pop("set", False))
        for asset, amount in body.items():
            value, code = _decimal(amount, asset), venue.pairs.asset_code(asset)
            if replace:
                account.balances[code] = value
            else:
                account.credit(code, value)
        return account.summary(venue.clock())

    @router.post("/accounts/{account_id}/keys", status_code=201)
    async def add_key(account_id: str, body: KeyCreate) -> dict[str, Any]:
        """Another API key (own nonces, own REST rate counter) for the account."""
        account = account_of(account_id)
        try:
            key = venue.accounts.add_key(account, api_key=body.api_key, api_secret=body.api_secret,
                                         nonce_window=body.nonce_window, name=body.name)
        except KrakenError as exc:
            raise fail(exc) from exc
        return {**key.public(), "api_secret": key.secret, "account_id": account.id}

    @router.get("/status")
    async def get_status() -> dict[str, Any]:
        """The venue's status and each pair's."""
        return {"status": venue.system_status, "pairs": {k: venue.pairs.status(k) for k in venue.pairs.specs}}

    @router.put("/status")
    async def put_status(body: StatusBody) -> dict[str, Any]:
        """Set the venue's status."""
        try:
            previous = venue.set_status(body.status)
        except KrakenError as exc:
            raise fail(exc) from exc
        return {"status": body.status, "previous": previous}

    @router.put("/status/{pair}")
    async def put_pair_status(pair: str, body: StatusBody) -> dict[str, Any]:
        """Set one pair's status (also what public AssetPairs shows)."""
        spec = pair_of(pair)
        try:
            previous = venue.set_status(body.status, spec)
        except KrakenError as exc:
            raise fail(exc) from exc
        return {"pair": spec.key, "status": body.status, "previous": previous}

    @router.get("/faults")
    async def get_faults() -> list[dict[str, Any]]:
        """Every fault rule with its counters."""
        return venue.faults.listing()

    @router.post("/faults", status_code=201)
    async def post_faults(body: FaultSpec | list[FaultSpec]) -> list[dict[str, Any]]:
        """Add one rule or a list of rules."""
        specs = body if isinstance(body, list) else [body]
        now = venue.clock()
        rules = [venue.faults.add(spec, now) for spec in specs]
        venue.tick()
        return [rule.as_dict() for rule in rules]

    @router.delete("/faults")
    async def delete_faults() -> dict[str, int]:
        """Remove every rule."""
        return {"removed": venue.faults.remove()}

    @router.delete("/faults/{rule_id}")
    async def delete_fault(rule_id: str) -> dict[str, int]:
        """Remove one rule."""
        removed = venue.faults.remove(rule_id)
        if not removed:
            raise HTTPException(404, f"no fault {rule_id!r}")
        return {"removed": removed}

    @router.get("/book/{pair}")
    async def get_book(pair: str, depth: int = 10) -> dict[str, Any]:
        """The book the engine trades against (third column: quantity the accounts consumed)."""
        return venue.engine.view(pair_of(pair), depth)

    @router.put("/book/{pair}")
    async def put_book(pair: str, body: BookBody) -> dict[str, Any]:
        """Trade ``pair`` against this synthetic book from now on."""
        spec = pair_of(pair)
        venue.engine.set_book(spec, _levels(body.bids), _levels(body.asks))
        return venue.engine.view(spec)

    @router.patch("/book/{pair}")
    async def patch_book(pair: str, body: BookBody) -> dict[str, Any]:
        """Change levels of the synthetic book (quantity 0 deletes a level)."""
        spec = pair_of(pair)
        try:
            venue.engine.update_book(spec, _levels(body.bids), _levels(body.asks))
        except ValueError as exc:
            raise HTTPException(409, str(exc)) from exc
        return venue.engine.view(spec)

    @router.delete("/book/{pair}")
    async def delete_book(pair: str) -> dict[str, Any]:
        """Go back to the replayed book."""
        spec = pair_of(pair)
        venue.engine.clear_book(spec)
        return venue.engine.view(spec)

    @router.post("/trades")
    async def post_trade(body: TradeBody) -> dict[str, Any]:
        """Print a public trade (fills resting orders it reaches)."""
        spec = pair_of(body.pair)
        venue.engine.print_trade(spec, _decimal(body.price, "price"), _decimal(body.qty, "qty"), body.side)
        return venue.engine.view(spec)

    @router.post("/seed")
    async def post_seed(body: SeedBody) -> dict[str, Any]:
        """Reset the trading side with a new seed."""
        if body.seed is None:
            raise HTTPException(400, "seed is required")
        venue.reset(body.seed)
        return {"seed": venue.seed}

    @router.post("/reset")
    async def post_reset(body: SeedBody | None = None) -> dict[str, Any]:
        """Forget accounts, orders, faults and synthetic books (same seed unless given)."""
        venue.reset(body.seed if body else None)
        return {"seed": venue.seed}

    @router.post("/tick")
    async def post_tick() -> dict[str, Any]:
        """Run the clocks now."""
        venue.tick()
        return {"time": venue.clock()}

    return router


def _levels(levels: list[tuple[Any, Any]]) -> list[tuple[str, str]]:
    out = []
    for price, qty in levels:
        p, q = _decimal(price, "price"), _decimal(qty, "qty")
        if p <= 0 or q < 0:
            raise HTTPException(400, "prices must be positive and quantities not negative")
        out.append((str(p), str(q)))
    return out
