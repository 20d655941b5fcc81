"""Matching against a replayed session, through the path the venue process uses; determinism by seed."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.replay.generator import GeneratorConfig, generate_file
from sandbox.replay.player import MarketState, ReplaySession
from sandbox.venue.public_rest import AssetPairsCatalog
from sandbox.venue.trading.private_api import PrivateApi
from sandbox.venue.trading.replay_bridge import FrameFeeder, replay_listener
from sandbox.venue.trading.venue import TradingVenue

ASSETPAIRS = Path(__file__).resolve().parents[3] / "fixtures" / "kraken" / "assetpairs.json"
CONFORMANCE = "kraken-conformance/flashbook_kraken_v2_book10_trade_btcusd_ethusd_20260707.ndjson"


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> ReplaySession:
    """A generated 60-second v2 session (BTC/USD, ETH/USD; book-10 and trades)."""
    path = tmp_path_factory.mktemp("venue") / "v2.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD"], channels=["book", "trade"],
                                  duration_s=60, seed=7), path)
    return ReplaySession.load(path)


class ManualClock:
    """The replay's clock: each frame's recorded receive time."""

    def __init__(self, now: float = 1_783_465_200.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def play(session: ReplaySession, seed: int) -> tuple[TradingVenue, list[tuple]]:
    """Replay ``session`` into a venue seeded ``seed``; orders go in at fixed frames; returns every fill."""
    clock = ManualClock(session.start)
    venue = TradingVenue(AssetPairsCatalog.from_file(ASSETPAIRS), seed=seed, clock=clock)
    account, key = venue.accounts.create(balances={"ZUSD": "10000000", "XXBT": "100", "XETH": "1000"})
    api = PrivateApi(venue)
    state = MarketState(session.api, session.depths)
    listener = replay_listener(venue)
    xbt = venue.pairs.get("XBTUSD")
    for i, frame in enumerate(session.frames):
        clock.now = frame.t
        state.apply(frame)
        listener(frame, state)
        if i in (50, 400, 900):
            bid, ask = venue.engine.best(xbt, "bid"), venue.engine.best(xbt, "ask")
            for params in (
                {"type": "buy", "ordertype": "market", "volume": "0.01"},
                {"type": "sell", "ordertype": "market", "volume": "0.02"},
                {"type": "buy", "ordertype": "limit", "price": str(bid), "volume": "0.05"},
                {"type": "sell", "ordertype": "limit", "price": str(ask), "volume": "0.05"},
                {"type": "buy", "ordertype": "limit", "price": str(bid - 20), "volume": "0.05", "oflags": "post"},
            ):
                api.call("AddOrder", key, {"pair": "XBTUSD", **params})
    fills = [(f.order.txid, f.txid, f.trade_id, f.order.side, f.price, f.vol, f.maker, f.fee) for f in account.trades]
    return venue, fills


def test_orders_fill_against_the_replayed_market(session) -> None:
    venue, fills = play(session, seed=1)
    takers = [f for f in fills if not f[6]]
    makers = [f for f in fills if f[6]]
    assert len(takers) >= 6  # six market orders, each walking one or more levels
    assert makers, "resting orders at the touch should fill as the replayed market trades"
    account = venue.accounts.get("AA0001")
    for order in account.orders.values():
        if order.ordertype == "limit":
            assert all(f.price == order.price for f in account.trades if f.order is order)  # makers at their price
        assert order.vol_exec <= order.vol
    # balances add up: every fill moved exactly its cost and fee
    spent = sum((f.cost + f.fee for f in account.trades if f.order.side == "buy"), Decimal(0))
    earned = sum((f.cost - f.fee for f in account.trades if f.order.side == "sell"), Decimal(0))
    assert account.balance("ZUSD") == Decimal("10000000") - spent + earned


def test_same_seed_same_fills_other_seed_other_ids(session) -> None:
    _, first = play(session, seed=1)
    _, again = play(session, seed=1)
    _, other = play(session, seed=2)
    assert first == again
    assert [f[3:] for f in first] == [f[3:] for f in other]  # the market decides prices and volumes
    assert [f[:3] for f in first] != [f[:3] for f in other]  # the seed decides the identifiers


@pytest.mark.shared
def test_resting_orders_fill_against_a_real_kraken_capture(shared_dir: Path) -> None:
    lines = (shared_dir / CONFORMANCE).read_text().splitlines()
    venue = TradingVenue(AssetPairsCatalog.from_file(ASSETPAIRS), seed=1, clock=ManualClock())
    account, key = venue.accounts.create(balances={"ZUSD": "10000000", "XXBT": "100", "XETH": "1000"})
    api = PrivateApi(venue)
    feeder = FrameFeeder(venue)
    feeder.feed(lines[:8])  # status, acknowledgements, both snapshots
    for pair in ("XBTUSD", "ETHUSD"):
        spec = venue.pairs.get(pair)
        bid, ask = venue.engine.best(spec, "bid"), venue.engine.best(spec, "ask")
        for side, price in (("buy", bid), ("sell", ask)):
            api.call("AddOrder", key, {"pair": pair, "type": side, "ordertype": "limit", "price": str(price),
                                       "volume": "0.01"})
    feeder.feed(lines[8:])
    assert account.trades and all(f.maker for f in account.trades)
    for order in account.orders.values():
        assert order.ahead >= 0 and order.vol_exec <= order.vol
