"""Seeded synthetic Kraken sessions (v2 and v1), written in the fixture format.

A generated session is what a client would have recorded: the status greeting,
its subscribe requests (``send``) and the acknowledgements, book snapshots,
then book updates with correct checksums, trades, ticker and candle updates,
heartbeats about once a second and a ping/pong every 30 seconds.  Activity
switches between quiet, normal and burst regimes shared by all pairs; each
pair's mid follows a mean-reverting target (see :mod:`sandbox.replay.market`).

The same :class:`GeneratorConfig` (seed included) always gives the same bytes.
:data:`PRESETS` names the sessions shipped in ``fixtures/kraken_replays/``.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox.errors import InvalidInput
from sandbox.replay import feed
from sandbox.replay.feed import DepthView
from sandbox.replay.fixture import Manifest, Record, write_session
from sandbox.replay.market import Fill, Market, fmt_fixed
from sandbox.replay.pairs import PairSpec, load_pairs
from sandbox.replay.protocol import dumps_exact, format_rfc3339

DEPTHS = (10, 25, 100, 500, 1000)
CHANNELS = {"v2": ("book", "trade", "ticker", "ohlc"), "v1": ("book", "trade", "ticker", "ohlc")}
#: activity regimes: (name, rate factor, mean duration in seconds)
REGIMES = (("quiet", 0.15, 8.0), ("normal", 1.0, 15.0), ("burst", 4.0, 2.5))
REGIME_WEIGHTS = (0.3, 0.55, 0.15)


@dataclass
class GeneratorConfig:
    """Everything that determines a generated session."""

    api: str = "v2"
    #: pair names in either spelling (``BTC/USD`` or ``XBT/USD``)
    symbols: list[str] = field(default_factory=lambda: ["BTC/USD", "ETH/USD"])
    depth: int = 10
    channels: list[str] = field(default_factory=lambda: ["book", "trade", "ticker", "ohlc"])
    duration_s: float = 60.0
    seed: int = 1
    #: mean market events per second for a pair of activity 1 in the normal regime
    rate: float = 6.0
    #: session start, epoch seconds (fixed so output is reproducible)
    start: float = 1783465200.0  # 2026-07-07T23:00:00Z
    ohlc_interval: int = 1

    def validate(self) -> None:
        """Raise :class:`InvalidInput` for an impossible configuration."""
        problems = []
        if self.api not in ("v1", "v2"):
            problems.append(f"api: must be v1 or v2, not {self.api!r}")
        if self.depth not in DEPTHS:
            problems.append(f"depth: must be one of {', '.join(map(str, DEPTHS))}, not {self.depth}")
        unknown = [c for c in self.channels if c not in CHANNELS.get(self.api, ())]
        if unknown:
            problems.append(f"channels: {', '.join(unknown)} not generated for {self.api}")
        pairs = load_pairs()
        missing = [s for s in self.symbols if s not in pairs]
        if missing:
            problems.append(f"symbols: unknown {', '.join(missing)} (known: {', '.join(sorted({p.v2 for p in pairs.values()}))})")
        if not self.symbols:
            problems.append("symbols: at least one is needed")
        if self.duration_s <= 0 or self.rate <= 0:
            problems.append("duration_s and rate must be positive")
        if problems:
            raise InvalidInput("invalid generator configuration", problems=problems)


#: Named sessions; those in :data:`SHIPPED` are committed in fixtures/kraken_replays/.
PRESETS: dict[str, GeneratorConfig] = {
    "v2-book10-majors": GeneratorConfig(
        api="v2", symbols=["BTC/USD", "ETH/USD", "SOL/USD", "XRP/USD", "DOGE/USD"], depth=10, duration_s=120, seed=101
    ),
    "v2-book100-btc-eth": GeneratorConfig(
        api="v2", symbols=["BTC/USD", "ETH/USD"], depth=100, channels=["book", "trade"], duration_s=60, seed=102
    ),
    "v2-book10-alts-quiet": GeneratorConfig(
        api="v2", symbols=["ADA/USD", "DOT/USD", "LINK/USD", "LTC/USD"], depth=10, duration_s=90, seed=103, rate=2.0
    ),
    "v1-book10-xbt-eth": GeneratorConfig(
        api="v1", symbols=["XBT/USD", "ETH/USD"], depth=10, channels=["book", "trade", "ticker"], duration_s=120,
        seed=201,
    ),
    "bench-v2-book100-24sym": GeneratorConfig(
        api="v2", symbols=[p for p in (
            "BTC/USD ETH/USD SOL/USD XRP/USD DOGE/USD ADA/USD DOT/USD LINK/USD LTC/USD AVAX/USD POL/USD ATOM/USD "
            "XLM/USD UNI/USD BCH/USD TRX/USD ETC/USD FIL/USD NEAR/USD AAVE/USD ALGO/USD XTZ/USD BTC/EUR ETH/EUR"
        ).split()],
        depth=100, channels=["book", "trade"], duration_s=60, seed=301,
    ),
}
#: Presets committed to the repository (the rest are generated on demand).
SHIPPED = ("v2-book10-majors", "v2-book100-btc-eth", "v2-book10-alts-quiet", "v1-book10-xbt-eth", "bench-v2-book100-24sym")


def default_dir() -> Path:
    """``fixtures/kraken_replays`` of the project checkout, else of the current directory."""
    repo = Path(__file__).resolve().parents[2] / "fixtures" / "kraken_replays"
    return repo if repo.is_dir() else Path.cwd() / "fixtures" / "kraken_replays"


def generate(config: GeneratorConfig) -> Iterator[Record]:
    """Yield the records of the session ``config`` describes."""
    config.validate()
    return _Session(config).records()


def generate_file(config: GeneratorConfig, path: str | Path, *, name: str = "") -> Manifest:
    """Generate ``config`` into ``path`` (gzip when it ends ``.gz``); returns the manifest written."""
    pairs = load_pairs()
    specs = [pairs[s] for s in config.symbols]
    precisions = {
        spec.name(config.api): (spec.price_decimals if config.api == "v2" else max(spec.price_decimals, 5), spec.qty_decimals)
        for spec in specs
    }
    return write_session(
        path,
        generate(config),
        api=config.api,
        source=f"generator{' preset ' + name if name else ''}",
        generator={"seed": config.seed, "config": asdict(config)},
        precisions=precisions,
        notes="synthetic session from sandbox.replay.generator; numbers in each pair's Kraken precision",
    )


class _Session:
    """Assembles one session's frames in time order."""

    def __init__(self, config: GeneratorConfig) -> None:
        self.cfg = config
        self.api = config.api
        self.rng = random.Random(config.seed)
        pairs = load_pairs()
        self.specs: list[PairSpec] = [pairs[s] for s in config.symbols]
        out_pd = None if self.api == "v2" else 5
        self.markets = [
            Market(spec, config.depth, random.Random(self.rng.getrandbits(64)), start=config.start,
                   price_decimals_out=None if out_pd is None else max(out_pd, spec.price_decimals))
            for spec in self.specs
        ]
        self.views = [DepthView(m.book, config.depth) for m in self.markets]
        self.names = [spec.name(self.api) for spec in self.specs]
        self.channel_ids: dict[tuple[str, str], int] = {}
        self.out: list[Record] = []
        self.last_t = config.start

    # -- output --------------------------------------------------------------------------

    def _emit(self, exchange_t: float, frame: str, direction: str = "recv") -> None:
        latency = 0.0 if direction == "send" else math.exp(self.rng.gauss(math.log(0.006), 0.5))
        self.last_t = max(self.last_t, exchange_t + latency)
        self.out.append(Record(round(self.last_t, 6), direction, frame))

    def records(self) -> Iterator[Record]:
        cfg = self.cfg
        t = self._greeting() + 0.01
        end = cfg.start + cfg.duration_s
        next_heartbeat = t + 1.0
        next_ping = cfg.start + 30.0
        regime_until = t
        factor = 1.0
        activity = [spec.activity for spec in self.specs]
        total = sum(activity)
        while True:
            if t >= regime_until:
                _, factor, mean = self.rng.choices(REGIMES, REGIME_WEIGHTS)[0]
                regime_until = t + self.rng.expovariate(1 / mean)
            t += self.rng.expovariate(cfg.rate * total * factor)
            while next_heartbeat <= min(t, end):
                self._emit(next_heartbeat, feed.V2_HEARTBEAT if self.api == "v2" else feed.V1_HEARTBEAT)
                next_heartbeat += self.rng.uniform(0.95, 1.05)
            while next_ping <= min(t, end):
                self._ping(next_ping)
                next_ping += 30.0
            if t >= end:
                break
            index = self.rng.choices(range(len(self.markets)), activity)[0]
            self._event(index, t)
            if len(self.out) > 1000:
                yield from self.out
                self.out.clear()
        yield from self.out
        self.out.clear()

    # -- session start -------------------------------------------------------------------

    def _greeting(self) -> float:
        """Status, subscriptions and snapshots; returns the time they end."""
        t = self.cfg.start
        conn = self.rng.getrandbits(63)
        self._emit(t, feed.v2_status(conn) if self.api == "v2" else feed.v1_system_status(conn))
        t += 0.2
        for req_id, channel in enumerate(self.cfg.channels, start=1):
            self._subscribe(t, req_id, channel)
            t += 0.01
        t += 0.3
        for i, view in enumerate(self.views):
            if "book" in self.cfg.channels:
                self._book_snapshot(i, view, t)
            if "ticker" in self.cfg.channels:
                self._ticker(i, t, "snapshot")
            if "ohlc" in self.cfg.channels:
                self._ohlc(i, t, "snapshot")
            t += 0.003
        return t

    def _subscribe(self, t: float, req_id: int, channel: str) -> None:
        cfg = self.cfg
        if self.api == "v2":
            params: dict[str, Any] = {"channel": channel, "symbol": self.names}
            result: dict[str, Any] = {"channel": channel}
            if channel == "book":
                params["depth"] = result["depth"] = cfg.depth
            if channel == "ohlc":
                params["interval"] = result["interval"] = cfg.ohlc_interval
            if channel == "ticker":
                result["event_trigger"] = "trades"
            result["snapshot"] = channel != "trade"
            self._emit(t, dumps_exact({"method": "subscribe", "params": params, "req_id": req_id}), "send")
            time_in = format_rfc3339(t + 0.02)
            for name in self.names:
                ack = feed.v2_ack("subscribe", {**result, "symbol": name}, time_in, format_rfc3339(t + 0.02004), req_id=req_id)
                self._emit(t + 0.02, ack)
            return
        sub: dict[str, Any] = {"name": channel}
        channel_name = channel
        if channel == "book":
            sub["depth"] = cfg.depth
            channel_name = f"book-{cfg.depth}"
        if channel == "ohlc":
            sub["interval"] = cfg.ohlc_interval
            channel_name = f"ohlc-{cfg.ohlc_interval}"
        self._emit(t, dumps_exact({"event": "subscribe", "pair": self.names, "reqid": req_id, "subscription": sub}), "send")
        for name in self.names:
            cid = self.channel_ids[(channel, name)] = self.rng.randrange(100, 9999)
            ack = feed.v1_subscription_status(
                "subscribed", sub, pair=name, channel_id=cid, channel_name=channel_name, reqid=req_id
            )
            self._emit(t + 0.02, ack)

    def _ping(self, t: float) -> None:
        req_id = int(t * 1000)
        if self.api == "v2":
            self._emit(t, dumps_exact({"method": "ping", "req_id": req_id}), "send")
            self._emit(t + 0.01, feed.v2_pong(format_rfc3339(t + 0.01), format_rfc3339(t + 0.01002), req_id=req_id))
        else:
            self._emit(t, dumps_exact({"event": "ping", "reqid": req_id}), "send")
            self._emit(t + 0.01, feed.v1_pong(req_id))

    # -- events --------------------------------------------------------------------------

    def _event(self, i: int, t: float) -> None:
        market = self.markets[i]
        fills = market.step(t)
        if "book" in self.cfg.channels:
            bids, asks = self.views[i].update()
            if bids or asks:
                checksum = market.book.checksum()
                if self.api == "v2":
                    frame = feed.v2_book("update", self.names[i], bids, asks, checksum, format_rfc3339(t))
                else:
                    cid = self.channel_ids[("book", self.names[i])]
                    frame = feed.v1_book_update(cid, f"book-{self.cfg.depth}", self.names[i], bids, asks, checksum, market.stamp)
                self._emit(t, frame)
        if fills:
            if "trade" in self.cfg.channels:
                self._trades(i, t, fills)
            if "ticker" in self.cfg.channels:
                self._ticker(i, t, "update")
            if "ohlc" in self.cfg.channels:
                self._ohlc(i, t, "update")

    def _book_snapshot(self, i: int, view: DepthView, t: float) -> None:
        bids, asks = view.snapshot()
        market = self.markets[i]
        if self.api == "v2":
            self._emit(t, feed.v2_book("snapshot", self.names[i], bids, asks, market.book.checksum(), format_rfc3339(t)))
        else:
            cid = self.channel_ids[("book", self.names[i])]
            self._emit(t, feed.v1_book_snapshot(cid, f"book-{self.cfg.depth}", self.names[i], bids, asks))

    def _trades(self, i: int, t: float, fills: list[Fill]) -> None:
        m, name = self.markets[i], self.names[i]
        if self.api == "v2":
            stamp = format_rfc3339(t)
            items = [
                {"symbol": name, "side": f.side, "price": D(m.price_text(f.ticks)), "qty": D(m.qty_text(f.lots)),
                 "ord_type": "market" if f.market else "limit", "trade_id": m.next_trade_id(), "timestamp": stamp}
                for f in fills
            ]
            self._emit(t, feed.v2_data("trade", "update", items))
            return
        rows = [
            [m.price_text(f.ticks), m.qty_text(f.lots), m.stamp, f.side[0], "m" if f.market else "l", ""] for f in fills
        ]
        self._emit(t, dumps_exact([self.channel_ids[("trade", name)], rows, "trade", name]))

    def _ticker(self, i: int, t: float, kind: str) -> None:
        m, name, s = self.markets[i], self.names[i], self.markets[i].stats
        bid, ask = m.best_bid(), m.best_ask()
        vwap = m.vwap_ticks(s.notional, s.volume)
        if self.api == "v2":
            change = s.last - s.open
            pct = Decimal(change * 100) / Decimal(s.open)
            item = {
                "symbol": name, "bid": D(m.price_text(bid)), "bid_qty": D(m.qty_text(m.bids[bid])),
                "ask": D(m.price_text(ask)), "ask_qty": D(m.qty_text(m.asks[ask])), "last": D(m.price_text(s.last)),
                "volume": D(m.qty_text(s.volume)), "vwap": D(m.price_text(vwap)), "low": D(m.price_text(s.low)),
                "high": D(m.price_text(s.high)), "change": D(fmt_fixed(change, m.pd)),
                "change_pct": pct.quantize(Decimal("0.01")), "timestamp": format_rfc3339(t),
            }
            self._emit(t, feed.v2_data("ticker", kind, [item]))
            return
        payload = {
            "a": [m.price_text(ask), max(1, m.asks[ask] // 10**m.qd), m.qty_text(m.asks[ask])],
            "b": [m.price_text(bid), max(1, m.bids[bid] // 10**m.qd), m.qty_text(m.bids[bid])],
            "c": [m.price_text(s.last), m.qty_text(s.last_lots)],
            "v": [m.qty_text(s.volume // 2), m.qty_text(s.volume)],
            "p": [m.price_text(vwap), m.price_text(vwap)],
            "t": [s.trades // 2, s.trades],
            "l": [m.price_text(s.low), m.price_text(s.low)],
            "h": [m.price_text(s.high), m.price_text(s.high)],
            "o": [m.price_text(s.open), m.price_text(s.open)],
        }
        self._emit(t, dumps_exact([self.channel_ids[("ticker", name)], payload, "ticker", name]))

    def _ohlc(self, i: int, t: float, kind: str) -> None:
        m, name, interval = self.markets[i], self.names[i], self.cfg.ohlc_interval
        c = m.candle(interval, t)
        vwap = m.vwap_ticks(c.notional, c.lots)
        if self.api == "v2":
            item = {
                "symbol": name, "open": D(m.price_text(c.open)), "high": D(m.price_text(c.high)),
                "low": D(m.price_text(c.low)), "close": D(m.price_text(c.close)), "trades": c.trades,
                "volume": D(m.qty_text(c.lots)), "vwap": D(m.price_text(vwap)),
                "interval_begin": format_rfc3339(c.begin)[:-1] + "000Z", "interval": interval,
                "timestamp": format_rfc3339(c.begin + interval * 60),
            }
            self._emit(t, feed.v2_data("ohlc", kind, [item], timestamp=format_rfc3339(t)[:-1] + "000Z"))
            return
        row = [m.stamp, f"{c.begin + interval * 60:.6f}", m.price_text(c.open), m.price_text(c.high),
               m.price_text(c.low), m.price_text(c.close), m.price_text(vwap), m.qty_text(c.lots), c.trades]
        self._emit(t, dumps_exact([self.channel_ids[("ohlc", name)], row, f"ohlc-{interval}", name]))


def D(text: str) -> Decimal:
    """A number text as a Decimal, written back unchanged by ``dumps_exact``."""
    return Decimal(text)
