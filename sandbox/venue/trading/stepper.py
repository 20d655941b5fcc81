"""Replay driven step by step, for scenarios: ``POST /admin/market/replay``.

The paced replay on the market-data port plays a session in real time to
whoever subscribes, so what an order meets depends on when it arrives.  A
scenario that needs exact fills from recorded data instead opens a *cursor*
on a session for one pair and advances it explicitly: each call applies the
next ``frames`` book frames (or frames up to the next ``trades`` public trades)
of that pair, in file order, straight into the matching engine.  While a
cursor is open the pair trades against the cursor's book (the engine's
synthetic slot, so the paced replay no longer moves it); closing the cursor
(``DELETE``) goes back to the live replay.  The same session and the same
steps always give the same book, so the same orders get the same fills.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sandbox.replay.book import OrderBook, V1Books, V2Books, parse_frame
from sandbox.replay.fixture import read_session
from sandbox.replay.protocol import classify
from sandbox.venue.trading.pairs import PairSpec
from sandbox.venue.trading.replay_bridge import trades_of

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "kraken_replays"
SUFFIXES = ("", ".ndjson.gz", ".ndjson", ".jsonl.gz", ".jsonl")
#: most cursors kept at once (oldest dropped first)
MAX_CURSORS = 256


def resolve_session(session: str, fixtures: Path = FIXTURES) -> Path:
    """The file of a shipped session name (or a path); ``FileNotFoundError`` when there is none."""
    for candidate in [fixtures / f"{session}{s}" for s in SUFFIXES] + [Path(session)]:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no session {session!r} in {fixtures}")


@dataclass
class Cursor:
    """One pair's position in one session."""

    name: str
    session: str
    pair: PairSpec
    frames: Iterator[str]
    adapter: V2Books | V1Books
    position: int = 0
    trades: int = 0
    finished: bool = False
    book: OrderBook | None = None
    last_trades: list[dict[str, str]] = field(default_factory=list)


class ReplayStepper:
    """Cursors over sessions, applied to a :class:`~sandbox.venue.trading.engine.MatchingEngine`."""

    def __init__(self, engine_of: Any, fixtures: Path = FIXTURES) -> None:
        """``engine_of()`` returns the venue's current engine (it is rebuilt on reset)."""
        self.engine_of = engine_of
        self.fixtures = fixtures
        self.cursors: dict[str, Cursor] = {}

    def open(self, name: str, session: str, pair: PairSpec) -> Cursor:
        """A cursor at the start of ``session`` for ``pair`` (replacing one of the same name)."""
        path = resolve_session(session, self.fixtures)
        reader = read_session(path)
        api = reader.manifest.api
        frames = (r.frame for r in reader.records() if r.dir == "recv")
        cursor = Cursor(name, session, pair, frames, V2Books(verify=False) if api == "v2" else V1Books(verify=False))
        self.close(name)
        if len(self.cursors) >= MAX_CURSORS:
            self.close(next(iter(self.cursors)))
        self.cursors[name] = cursor
        return cursor

    def step(self, cursor: Cursor, frames: int = 0, trades: int = 0) -> dict[str, Any]:
        """Apply the pair's next ``frames`` book/trade frames, or frames up to ``trades`` more public trades."""
        engine = self.engine_of()
        applied, seen_trades = 0, 0
        cursor.last_trades = []
        while not cursor.finished and ((frames and applied < frames) or (trades and seen_trades < trades)):
            text = next(cursor.frames, None)
            if text is None:
                cursor.finished = True
                break
            msg = parse_frame(text)
            try:
                info = classify(msg)
            except ValueError:
                continue
            cursor.position += 1
            if info.kind not in ("book", "trade"):
                cursor.adapter.handle(msg)
                continue
            mine = [s for s in info.symbols if engine.pairs.find(s) is cursor.pair]
            if info.kind == "book":
                cursor.adapter.handle(msg)
                if not mine:
                    continue
                cursor.book = cursor.adapter.books.get(mine[0])
                if cursor.book is not None:
                    engine.step_book(cursor.pair, cursor.book)
                applied += 1
            else:
                prints = [t for t in trades_of(msg, info.api) if engine.pairs.find(t[0]) is cursor.pair]
                if not prints:
                    continue
                for _, price, qty, side in prints:
                    side = {"b": "buy", "s": "sell"}.get(side, side)
                    engine.print_trade(cursor.pair, Decimal(str(price)), Decimal(str(qty)), side)
                    cursor.last_trades.append({"price": str(price), "qty": str(qty), "side": side})
                    cursor.trades += 1
                    seen_trades += 1
                applied += 1
        return self.describe(cursor, applied)

    def close(self, name: str) -> bool:
        """Drop a cursor; its pair goes back to the live replay."""
        cursor = self.cursors.pop(name, None)
        if cursor is None:
            return False
        if not any(c.pair is cursor.pair for c in self.cursors.values()):
            self.engine_of().clear_book(cursor.pair)
        return True

    def reset(self) -> None:
        """Forget every cursor (the venue was reset; its engine already forgot the books)."""
        self.cursors.clear()

    @staticmethod
    def describe(cursor: Cursor, applied: int = 0) -> dict[str, Any]:
        """What the cursor did and where it stands."""
        book = cursor.book
        bid = book.best_bid if book is not None else None
        ask = book.best_ask if book is not None else None
        return {
            "cursor": cursor.name, "session": cursor.session, "pair": cursor.pair.key,
            "position": cursor.position, "applied": applied, "trades_total": cursor.trades,
            "trades": cursor.last_trades, "finished": cursor.finished,
            "best_bid": [str(bid.price), str(bid.qty)] if bid else None,
            "best_ask": [str(ask.price), str(ask.qty)] if ask else None,
        }
