"""Books through the venue: every checksum verifies on the client, at any depth, for any number of clients."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from sandbox.replay.book import BookCheck, V1Books, V2Books, parse_frame
from sandbox.replay.generator import GeneratorConfig, generate_file
from sandbox.replay.importers import import_capture
from sandbox.replay.player import ReplaySession
from sandbox.replay.protocol import parse_rfc3339
from sandbox.venue.ws import KrakenWsServer, ReplayOptions

pytestmark = pytest.mark.integration

CONFORMANCE = "kraken-conformance"


@pytest.fixture(scope="module")
def v2_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("books") / "v2.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD", "SOL/USD"], depth=25, duration_s=15,
                                  seed=31), path)
    return path


@pytest.fixture(scope="module")
def v1_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("books") / "v1.ndjson.gz"
    generate_file(GeneratorConfig(api="v1", symbols=["XBT/USD", "ETH/USD"], channels=["book", "trade"], duration_s=15,
                                  seed=32), path)
    return path


@dataclass
class Client:
    """A test client: subscribes, then keeps a book per symbol and every check it made."""

    api: str
    requests: list[dict[str, Any]]
    checks: list[BookCheck] = field(default_factory=list)
    frames: list[str] = field(default_factory=list)
    trades: int = 0

    async def run(self, url: str, server: KrakenWsServer, settle: float = 0.5) -> Client:
        books: V2Books | V1Books = V2Books() if self.api == "v2" else V1Books()
        async with connect(url, max_size=2**24) as ws:
            for request in self.requests:
                await ws.send(json.dumps(request))
            while True:
                timeout = settle if server._finished is not None and server._finished.is_set() else 20
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout)
                except TimeoutError:
                    return self
                msg = parse_frame(text)
                checks = books.handle(msg)
                if checks:
                    self.frames.append(text)
                self.checks.extend(checks)
                if (isinstance(msg, dict) and msg.get("channel") == "trade") or (isinstance(msg, list) and msg[-2] == "trade"):
                    self.trades += 1

    @property
    def bad(self) -> list[BookCheck]:
        return [c for c in self.checks if not c.ok]

    @property
    def verified(self) -> int:
        return sum(c.expected is not None and c.ok for c in self.checks)


def v2_book(symbols: list[str], depth: int) -> dict[str, Any]:
    return {"method": "subscribe", "params": {"channel": "book", "symbol": symbols, "depth": depth}}


def v1_book(pairs: list[str], depth: int) -> dict[str, Any]:
    return {"event": "subscribe", "pair": pairs, "subscription": {"name": "book", "depth": depth}}


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_several_clients_at_several_depths_all_verify(v2_file: Path) -> None:
    session = ReplaySession.load(v2_file)
    recorded = [f.text for f in session.frames if f.info.kind == "book" and f.info.msg_type == "update"
                and f.info.symbols == ("BTC/USD",)]

    async def scenario() -> list[Client]:
        async with KrakenWsServer(session, options=ReplayOptions(speed=None)) as srv:
            clients = [
                Client("v2", [v2_book(["BTC/USD"], 25)]),  # the recorded depth: frames forwarded as recorded
                Client("v2", [v2_book(["BTC/USD", "ETH/USD"], 10)]),  # shallower: derived
                Client("v2", [v2_book(["BTC/USD", "SOL/USD"], 100), {"method": "subscribe", "params": {"channel": "trade", "symbol": ["SOL/USD"]}}]),
            ]
            return await asyncio.gather(*(c.run(srv.url, srv) for c in clients))

    same, shallow, deep = run(scenario())
    for client in (same, shallow, deep):
        assert client.bad == [], client.bad[:3]
        assert client.verified > 100
    assert same.frames[1:] == recorded  # byte for byte, after the venue's own snapshot
    assert {c.symbol for c in shallow.checks} == {"BTC/USD", "ETH/USD"}
    assert deep.trades > 0


def test_late_subscribers_and_resubscribers_get_the_book_as_it_stands(v2_file: Path) -> None:
    async def scenario() -> tuple[list[Client], list[BookCheck]]:
        async with KrakenWsServer(v2_file, options=ReplayOptions(speed=5.0)) as srv:
            early = [asyncio.create_task(Client("v2", [v2_book(["ETH/USD"], d)]).run(srv.url, srv)) for d in (10, 25)]
            await asyncio.sleep(0.8)
            # unsubscribe, let the book move with nobody watching, subscribe again
            books, again = V2Books(), []
            async with connect(srv.url) as ws:
                await ws.send(json.dumps(v2_book(["ETH/USD"], 25)))
                await asyncio.sleep(0.3)
                await ws.send(json.dumps({"method": "unsubscribe", "params": {"channel": "book", "symbol": ["ETH/USD"], "depth": 25}}))
                await asyncio.sleep(0.5)
                await ws.send(json.dumps(v2_book(["ETH/USD"], 25)))
                seen_unsubscribe = False
                while len(again) < 30:
                    msg = parse_frame(await asyncio.wait_for(ws.recv(), 10))
                    if msg.get("method") == "unsubscribe":
                        seen_unsubscribe, books = True, V2Books()
                        continue
                    checks = books.handle(msg)
                    if seen_unsubscribe:
                        again.extend(checks)
            late = await asyncio.gather(*(Client("v2", [v2_book(["ETH/USD"], d)]).run(srv.url, srv) for d in (10, 25)))
            return [*(await asyncio.gather(*early)), *late], again

    (early10, early25, late10, late25), again = run(scenario())
    for client in (early10, early25, late10, late25):
        assert client.bad == [], client.bad[:3]
    for late, early in ((late10, early10), (late25, early25)):
        # How many updates a late client still sees depends on how far the paced replay got (machine load);
        # what must hold is that it starts from a snapshot of the book as it stands, and sees no more.
        assert late.checks[0].kind == "snapshot" and len(late.checks) <= len(early.checks)
    assert again[0].kind == "snapshot" and all(c.ok for c in again)


def test_v1_books_verify_at_recorded_and_derived_depths(v1_file: Path) -> None:
    async def scenario() -> list[Client]:
        async with KrakenWsServer(v1_file, options=ReplayOptions(speed=None)) as srv:
            clients = [Client("v1", [v1_book(["XBT/USD", "ETH/USD"], 10)]), Client("v1", [v1_book(["XBT/USD"], 25)])]
            return await asyncio.gather(*(c.run(srv.url, srv) for c in clients))

    for client in run(scenario()):
        assert client.bad == [] and client.verified > 100


def test_speed_n_paces_the_session(tmp_path: Path) -> None:
    path = tmp_path / "short.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD"], channels=["book"], duration_s=6, seed=33), path)
    session = ReplaySession.load(path)
    span = session.end - session.start

    async def scenario() -> float:
        async with KrakenWsServer(session, options=ReplayOptions(speed=4.0)) as srv:
            await Client("v2", [v2_book(["BTC/USD"], 10)]).run(srv.url, srv, settle=0.2)
            assert srv.stats.started_at is not None and srv.stats.finished_at is not None
            return srv.stats.finished_at - srv.stats.started_at

    elapsed = run(scenario())
    assert span / 4 * 0.8 < elapsed < span / 4 + 1.0, (span, elapsed)


def test_loop_rebases_times_and_trade_ids_and_books_stay_valid(tmp_path: Path) -> None:
    path = tmp_path / "loop.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD"], channels=["book", "trade"], duration_s=3, seed=34), path)
    session = ReplaySession.load(path)
    per_round = sum(f.info.kind == "book" for f in session.frames)

    async def scenario() -> tuple[list[Any], list[Any], int]:
        async with KrakenWsServer(session, options=ReplayOptions(speed=None, loop=True)) as srv:
            books, stamps, ids = V2Books(), [], []
            # an unbounded receive queue: a flooded client must still see the server's close frame
            async with connect(srv.url, max_queue=None) as ws:
                await ws.send(json.dumps(v2_book(["BTC/USD"], 10)))
                await ws.send(json.dumps({"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD"]}}))
                checks = 0
                while checks < per_round * 2.5:
                    msg = parse_frame(await ws.recv())
                    for check in books.handle(msg):
                        assert check.ok, check
                        checks += 1
                        if check.timestamp:
                            stamps.append(parse_rfc3339(check.timestamp))
                    if msg.get("channel") == "trade":
                        ids.extend(t["trade_id"] for t in msg["data"])
            return stamps, ids, srv.stats.loops_completed

    started = time.time()
    stamps, ids, loops = run(scenario())
    assert loops >= 2
    assert abs(stamps[0] - started) < 60  # rebased to now (to the minute: the session has no candles, so closer)
    assert all(b >= a for a, b in zip(stamps, stamps[1:], strict=False))  # never back in time across rounds
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # trade ids keep increasing


@pytest.mark.shared
def test_real_v2_capture_replays_with_every_checksum_verifying(shared_dir: Path, tmp_path: Path) -> None:
    src = shared_dir / CONFORMANCE / "flashbook_kraken_v2_book10_trade_btcusd_ethusd_20260707.ndjson"
    import_capture(src, tmp_path / "flashbook.ndjson.gz")

    async def scenario() -> Client:
        async with KrakenWsServer(tmp_path / "flashbook.ndjson.gz", options=ReplayOptions(speed=None)) as srv:
            requests = [v2_book(["BTC/USD", "ETH/USD"], 10),
                        {"method": "subscribe", "params": {"channel": "trade", "symbol": ["BTC/USD", "ETH/USD"]}}]
            return await Client("v2", requests).run(srv.url, srv)

    client = run(scenario())
    assert client.bad == []
    assert len(client.checks) == 2962 and client.verified == 2962 and client.trades == 10


@pytest.mark.shared
def test_real_v1_capture_replays_with_every_checksum_verifying(shared_dir: Path, tmp_path: Path) -> None:
    import_capture(shared_dir / CONFORMANCE / "pykrakensdk_v1_book10_xbtusd_20230830.json", tmp_path / "sdk.ndjson.gz")

    async def scenario() -> Client:
        async with KrakenWsServer(tmp_path / "sdk.ndjson.gz", options=ReplayOptions(speed=None)) as srv:
            return await Client("v1", [v1_book(["XBT/USD"], 10)]).run(srv.url, srv)

    client = run(scenario())
    assert client.bad == []
    assert len(client.checks) == 980 and client.verified == 979
