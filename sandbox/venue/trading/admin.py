"""The venue's admin API for scenarios and tests, under ``/admin``: not Kraken's, and loopback only.

Every route answers 403 unless the client address is in the allowed networks
(loopback by default; the docker runtime adds its bridge's gateway, the address
requests from the host arrive from: ``VENUE_ADMIN_ALLOW=gateway``, see :func:`admin_networks`).  Bodies
and answers are plain JSON, numbers as strings.

=====================================  ==========================================================
``GET /admin/trading``                 seed, statuses, accounts, faults, executions connections
``POST /admin/accounts``               create an account and key: ``{"balances": {"ZUSD": "10000"},
                                       "tier", "volume_30d", "api_key", "api_secret", "nonce_window",
                                       "name"}`` -> ``{"account_id", "api_key", "api_secret", ...}``
``GET /admin/accounts[/{id}]``         balances, holds, volume, open orders
``GET /admin/accounts/{id}/orders``    every order, open and closed (``?cl_ord_id=&userref=&status=``)
``POST /admin/accounts/{id}/balances`` ``{"ZUSD": "500"}`` adds to balances (``"set": true`` replaces)
``POST /admin/accounts/{id}/keys``     another API key for the account
``GET|PUT /admin/status``              ``{"status": "online|maintenance|cancel_only|post_only"}``
``GET|PUT /admin/rate-limits``         ``{"enabled": false}``: Kraken's rate limits off (load tests of the
                                       OMS) or back on; counters are forgotten either way
``PUT /admin/status/{pair}``           one pair's status (``online``, ``cancel_only``, ``post_only``,
                                       ``limit_only``, ``reduce_only``)
``PUT /admin/listing/{pair}``          ``{"listed": false}``: delist a pair (gone from AssetPairs, unknown to
                                       the private API) or list it again
``GET|POST|DELETE /admin/faults``      fault rules (see :mod:`.faults`); ``DELETE /admin/faults/{id}``
``GET|PUT|PATCH|DELETE /admin/book/{pair}``  the book the engine trades against: ``PUT`` a synthetic
                                       snapshot ``{"bids": [[price, qty]...], "asks": [...]}``, ``PATCH``
                                       level changes (qty 0 deletes), ``DELETE`` back to the replay
``POST /admin/trades``                 print a public trade ``{"pair", "price", "qty", "side"}``
``PATCH /admin/accounts/{id}``         ``{"tier", "volume_30d"}``: verification tier; 30-day volume reset
``POST /admin/market/replay``          scenario replay cursor: ``{"cursor", "session", "pair"}`` opens
                                       one, ``{"cursor", "frames": N}`` / ``"trades": N`` advances it
``DELETE /admin/market/replay/{c}``    close a cursor (the pair follows the live replay again)
``POST /admin/seed``                   ``{"seed": 42}``: reset with a new seed
``POST /admin/reset``                  ``{"seed": null}``: forget accounts, orders, faults, books
``POST /admin/tick``                   run the clocks now (dead man's switch, GTD, timed faults)
=====================================  ==========================================================
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
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

#: In ``VENUE_ADMIN_ALLOW``, the container's default gateway: the docker bridge, the address requests from the
#: host through a published port arrive from (other containers on the network arrive from their own addresses).
GATEWAY = "gateway"


def default_gateway(route_table: str = "/proc/net/route") -> str | None:
    """The IPv4 default gateway from the kernel's routing table (``None`` when there is none)."""
    try:
        lines = Path(route_table).read_text().splitlines()[1:]
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) > 2 and fields[1] == "00000000" and fields[2] != "00000000":
            return str(ipaddress.IPv4Address(int(fields[2], 16).to_bytes(4, "little")))
    return None


def admin_networks(allow: str = "", route_table: str = "/proc/net/route") -> list[str]:
    """Loopback plus ``allow``: comma-separated CIDRs, where ``gateway`` is the default gateway's address."""
    networks = list(LOOPBACK)
    for item in filter(None, (part.strip() for part in allow.split(","))):
        if item == GATEWAY:
            if (gateway := default_gateway(route_table)) is not None:
                networks.append(f"{gateway}/32")
        else:
            networks.append(str(ipaddress.ip_network(item, strict=False)))
    return networks


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


class AccountUpdate(BaseModel):
    """``PATCH /admin/accounts/{id}``: place the account in a fee tier / verification tier."""

    model_config = ConfigDict(extra="forbid")

    tier: str | None = None
    #: the starting 30-day volume; its own trades so far are forgotten, so the fee tier is exactly this one's
    volume_30d: str | int | float | None = None


class ReplayStepBody(BaseModel):
    """``POST /admin/market/replay``: open (``session`` given) or advance a cursor."""

    model_config = ConfigDict(extra="forbid")

    cursor: str = Field(min_length=1, max_length=200)
    session: str | None = None
    pair: str | None = None
    frames: int = Field(0, ge=0, le=1_000_000)
    trades: int = Field(0, ge=0, le=1_000_000)


class RateLimitsBody(BaseModel):
    """``PUT /admin/rate-limits``."""

    enabled: bool


class StatusBody(BaseModel):
    """``PUT /admin/status[/{pair}]``."""

    status: str


class ListingBody(BaseModel):
    """``PUT /admin/listing/{pair}``."""

    listed: bool


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

    @router.get("/accounts/{account_id}/orders")
    async def account_orders(account_id: str, cl_ord_id: str | None = None, userref: int | None = None,
                             status: str | None = None) -> list[dict[str, Any]]:
        """Every order of the account (open and closed), optionally by ``cl_ord_id``, ``userref``, ``status``."""
        account = account_of(account_id)
        out = []
        for o in account.orders.values():
            if (cl_ord_id is not None and o.cl_ord_id != cl_ord_id) or (userref is not None and o.userref != userref) \
                    or (status is not None and o.status != status):
                continue
            out.append({"txid": o.txid, "cl_ord_id": o.cl_ord_id, "userref": o.userref, "pair": o.pair.key,
                        "side": o.side, "type": o.ordertype, "price": str(o.price) if o.price is not None else None,
                        "vol": str(o.vol), "vol_exec": str(o.vol_exec), "cost": str(o.cost), "fee": str(o.fee),
                        "status": o.status, "reason": o.reason, "trades": list(o.trades)})
        return out

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

    @router.patch("/accounts/{account_id}")
    async def update_account(account_id: str, body: AccountUpdate) -> dict[str, Any]:
        """Change the verification tier and/or reset the 30-day volume."""
        account = account_of(account_id)
        if body.tier is not None:
            from sandbox.venue.trading.accounts import TIERS

            if body.tier not in TIERS:
                raise HTTPException(400, f"tier must be one of {', '.join(TIERS)}")
            account.tier = body.tier
        if body.volume_30d is not None:
            account.base_volume = _decimal(body.volume_30d, "volume_30d")
            account.volume_log.clear()
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

    @router.get("/rate-limits")
    async def get_rate_limits() -> dict[str, Any]:
        """Whether Kraken's rate limits are applied."""
        return {"enabled": venue.limiter.enabled}

    @router.put("/rate-limits")
    async def put_rate_limits(body: RateLimitsBody) -> dict[str, Any]:
        """Apply Kraken's rate limits or not (a load test of the OMS must not measure the venue's limiter)."""
        previous, venue.limiter.enabled = venue.limiter.enabled, body.enabled
        venue.limiter.reset()
        return {"enabled": body.enabled, "previous": previous}

    @router.put("/status/{pair}")
    async def put_pair_status(pair: str, body: StatusBody) -> dict[str, Any]:
        """Set one pair's status (also what public AssetPairs shows)."""
        spec = pair_of(pair)
        try:
            previous = venue.set_status(body.status, spec)
        except KrakenError as exc:
            raise fail(exc) from exc
        return {"pair": spec.key, "status": body.status, "previous": previous}

    @router.put("/listing/{pair}")
    async def put_listing(pair: str, body: ListingBody) -> dict[str, Any]:
        """List or delist one pair (a delisted pair leaves public AssetPairs)."""
        spec = pair_of(pair)
        return {"pair": spec.key, "listed": body.listed, "previous": venue.set_listed(spec, body.listed)}

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

    @router.post("/market/replay")
    async def step_replay(body: ReplayStepBody) -> dict[str, Any]:
        """Open a replay cursor on a session for one pair (``session``, ``pair``) and/or advance it."""
        stepper = venue.stepper
        if body.session is not None:
            if body.pair is None:
                raise HTTPException(400, "pair is required to open a cursor")
            try:
                cursor = stepper.open(body.cursor, body.session, pair_of(body.pair))
            except FileNotFoundError as exc:
                raise HTTPException(404, str(exc)) from exc
        else:
            cursor = stepper.cursors.get(body.cursor)
            if cursor is None:
                raise HTTPException(404, f"no replay cursor {body.cursor!r}")
        return stepper.step(cursor, body.frames, body.trades)

    @router.delete("/market/replay/{cursor}")
    async def close_replay(cursor: str) -> dict[str, Any]:
        """Close a cursor: its pair trades against the live replay again."""
        return {"closed": venue.stepper.close(cursor)}

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
