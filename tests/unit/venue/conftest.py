"""Shared pieces for the trading venue's unit tests: a manual clock, a venue, signed calls in-process."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.venue.public_rest import AssetPairsCatalog
from sandbox.venue.trading.accounts import Account, ApiKey
from sandbox.venue.trading.private_api import PrivateApi
from sandbox.venue.trading.signing import signed_request
from sandbox.venue.trading.venue import TradingVenue

ASSETPAIRS = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"
D = Decimal


class ManualClock:
    """A clock the test moves."""

    def __init__(self, start: float = 1_780_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def catalog() -> AssetPairsCatalog:
    """A fresh catalogue per test (venues write pair status into it)."""
    return AssetPairsCatalog.from_file(ASSETPAIRS)


@pytest.fixture
def venue(catalog: AssetPairsCatalog, clock: ManualClock) -> TradingVenue:
    return TradingVenue(catalog, seed=42, clock=clock)


class Trader:
    """One account driving the private API in-process (no HTTP): ``trader("AddOrder", pair=...)``."""

    def __init__(self, venue: TradingVenue, account: Account, key: ApiKey) -> None:
        self.venue, self.account, self.key = venue, account, key
        self.api = PrivateApi(venue)

    def __call__(self, method: str, **params: Any) -> Any:
        return self.api.call(method, self.key, {k: str(v) for k, v in params.items()})

    def buy(self, volume: Any, price: Any = None, **extra: Any) -> str:
        return self._order("buy", volume, price, **extra)

    def sell(self, volume: Any, price: Any = None, **extra: Any) -> str:
        return self._order("sell", volume, price, **extra)

    def _order(self, side: str, volume: Any, price: Any, pair: str = "XBTUSD", **extra: Any) -> str:
        params = {"pair": pair, "type": side, "ordertype": "market" if price is None else "limit", "volume": volume}
        if price is not None:
            params["price"] = price
        return self("AddOrder", **params, **extra)["txid"][0]

    def order(self, txid: str) -> Any:
        return self.account.orders[txid]

    def fills(self, txid: str | None = None) -> list[tuple[Decimal, Decimal, bool]]:
        """``(price, vol, maker)`` of the account's fills (of one order)."""
        return [(f.price, f.vol, f.maker) for f in self.account.trades if txid is None or f.order.txid == txid]


@pytest.fixture
def trader(venue: TradingVenue) -> Callable[..., Trader]:
    """``trader(ZUSD="100000", XXBT="1", tier=..., volume_30d=...)``: a funded account."""

    def make(*, tier: str = "intermediate", volume_30d: Any = 0, **balances: Any) -> Trader:
        account, key = venue.accounts.create(balances=balances or {"ZUSD": "1000000", "XXBT": "100"},
                                             tier=tier, volume_30d=volume_30d)
        return Trader(venue, account, key)

    return make


class Market:
    """The synthetic XBT/USD market of a test: ``market.book(...)``, ``market.update(...)``, ``market.trade(...)``."""

    def __init__(self, venue: TradingVenue) -> None:
        self.venue = venue
        self.pair = venue.pairs.get("XBTUSD")

    def book(self, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> None:
        self.venue.engine.set_book(self.pair, bids, asks)

    def update(self, bids: list[tuple[str, str]] = (), asks: list[tuple[str, str]] = ()) -> None:
        self.venue.engine.update_book(self.pair, bids, asks)

    def trade(self, price: str, qty: str, side: str) -> None:
        self.venue.engine.print_trade(self.pair, D(price), D(qty), side)


@pytest.fixture
def market(venue: TradingVenue) -> Market:
    return Market(venue)


class HttpTrader:
    """Signed private calls over the ASGI app (real HTTP semantics, no server)."""

    def __init__(self, app: Any, api_key: str, secret: str, client: tuple[str, int] = ("127.0.0.1", 40000)) -> None:
        self.app, self.api_key, self.secret, self.client = app, api_key, secret, client
        self.nonces = itertools.count(1_700_000_000_000)

    def post(self, path: str, content: bytes | str, headers: dict[str, str]) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.client)
            async with httpx.AsyncClient(transport=transport, base_url="http://venue") as c:
                return await c.post(path, content=content, headers=headers)

        return asyncio.run(call())

    def call(self, method: str, nonce: int | None = None, **params: Any) -> httpx.Response:
        path = f"/0/private/{method}"
        headers, body = signed_request(path, params, self.api_key, self.secret,
                                       next(self.nonces) if nonce is None else nonce)
        return self.post(path, body, headers)


class AppClient:
    """Plain (admin, public) requests through an ASGI app: ``client.request("PUT", "/admin/status", json=...)``."""

    def __init__(self, app: Any, client: tuple[str, int] = ("127.0.0.1", 40001)) -> None:
        self.app, self.client = app, client

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=self.client)
            async with httpx.AsyncClient(transport=transport, base_url="http://venue") as c:
                return await c.request(method, path, **kwargs)

        return asyncio.run(call())

    def signed(self, api_key: str, secret: str) -> HttpTrader:
        """A signed private-API client for one key."""
        return HttpTrader(self.app, api_key, secret, self.client)


@pytest.fixture
def app_client() -> Callable[..., AppClient]:
    """``app_client(app, client=("127.0.0.1", 1))``."""
    return AppClient
