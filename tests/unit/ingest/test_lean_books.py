"""The ingest's lean v2 books give exactly the checks of the full books (sandbox.replay.book.V2Books)."""

from __future__ import annotations

import random
import zlib
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest

from sandbox.ingest.books import LeanV2Books
from sandbox.ingest.feed import parse_frame
from sandbox.replay.book import V2Books
from sandbox.replay.fixture import read_session
from sandbox.replay.generator import GeneratorConfig, generate_file


def _both(frames: list[str], depth: int) -> tuple[list[Any], list[Any]]:
    lean, full = LeanV2Books(depth), V2Books(depth)
    lean_checks, full_checks = [], []
    for frame in frames:
        lean_checks += lean.handle(parse_frame(frame))
        full_checks += full.handle(parse_frame(frame))
    return lean_checks, full_checks


@pytest.mark.parametrize("depth", [10, 100])
def test_every_check_of_a_generated_session_equals_the_full_books(tmp_path: Path, depth: int) -> None:
    path = tmp_path / "s.ndjson.gz"
    generate_file(GeneratorConfig(api="v2", symbols=["BTC/USD", "ETH/USD", "SOL/USD"], channels=["book", "trade"],
                                  duration_s=20, seed=11, depth=depth), path)
    frames = [r.frame for r in read_session(path).records() if r.dir == "recv"]
    lean, full = _both(frames, depth)
    assert len(lean) > 500
    assert lean == full
    assert all(c.expected == c.computed for c in lean)


def _frame(kind: str, bids: list[tuple[str, str]], asks: list[tuple[str, str]], checksum: int = 0) -> str:
    def side(levels: list[tuple[str, str]]) -> str:
        return "[" + ",".join(f'{{"price":{p},"qty":{q}}}' for p, q in levels) + "]"

    return (f'{{"channel":"book","type":"{kind}","data":[{{"symbol":"X/Y","bids":{side(bids)},"asks":{side(asks)},'
            f'"checksum":{checksum},"timestamp":"2026-01-01T00:00:00.000000Z"}}]}}')


def test_random_walk_with_odd_tokens_matches_the_full_books() -> None:
    """Zero quantities in every spelling, equal prices written differently, integer tokens, truncation."""
    rng = random.Random(5)
    zeros = ["0", "0.0", "0.00000000", "0e5", "0.0e-3", "-0.0", "0E+2"]
    frames = [_frame("snapshot", [(f"{100 - i}.{rng.randrange(100):02d}", "1.5") for i in range(30)],
                     [(f"{101 + i}.{rng.randrange(100):02d}", "2") for i in range(30)])]
    for _ in range(3000):
        side = rng.choice(("bids", "asks"))
        base = 97 if side == "bids" else 100
        whole = base + rng.randrange(6)
        price = rng.choice([f"{whole}.{rng.randrange(4) * 25:02d}", f"{whole}.{rng.randrange(4) * 25:02d}0", str(whole),
                            f"{whole}.0", f"{whole}e0"])
        qty = rng.choice(zeros) if rng.random() < 0.3 else rng.choice(["0.00005100", "3", "12.5", "1e-3", "0.10"])
        levels = [(price, qty)]
        frames.append(_frame("update", levels if side == "bids" else [], levels if side == "asks" else []))
    lean, full = _both(frames, 25)
    assert len(lean) == len(frames)
    assert lean == full
    assert any(c.crossed for c in full) and not all(c.crossed for c in full)


def test_malformed_levels_raise_like_the_full_books() -> None:
    for bad, error in (('{"price":"abc","qty":1.0}', InvalidOperation), ('{"qty":1.0}', KeyError),
                       ('{"price":1.0,"qty":"1.2.3"}', InvalidOperation), ('{"price":1.0,"qty":""}', InvalidOperation)):
        frame = '{"channel":"book","type":"update","data":[{"symbol":"X/Y","bids":[' + bad + '],"asks":[],"checksum":1}]}'
        for books in (LeanV2Books(10), V2Books(10)):
            with pytest.raises(error):
                books.handle(parse_frame(frame))


def test_quantity_text_decides_zero_only_when_plain() -> None:
    lean = LeanV2Books(10)
    lean.handle(parse_frame(_frame("snapshot", [("1.0", "2.0")], [("2.0", "1.0")])))
    book = lean.books["X/Y"]
    lean.handle(parse_frame(_frame("update", [("1.00", "0e3")], [])))  # a zero in exponent form deletes
    assert len(book.bids) == 0
    lean.handle(parse_frame(_frame("update", [("1.0", "0.001")], [])))
    assert book.bids.keys == [Decimal("1.0")] and book.bids.fragment(Decimal("1")) == "101"
    assert book.bids.fragment(Decimal("2")) is None
    assert book.checksum() == zlib.crc32(b"2010" + b"101")  # asks then bids


def test_depth_comes_from_the_acknowledgement() -> None:
    lean = LeanV2Books(10)
    lean.handle({"method": "subscribe", "success": True, "result": {"channel": "book", "symbol": "X/Y", "depth": 25}})
    lean.handle(parse_frame(_frame("snapshot", [(f"{50 - i}.5", "1.0") for i in range(40)], [("60.0", "1.0")])))
    assert lean.books["X/Y"].depth == 25 and len(lean.books["X/Y"].bids) == 25
    lean.handle({"method": "unsubscribe", "success": True, "result": {"channel": "book", "symbol": "X/Y"}})
    assert "X/Y" not in lean.books and "X/Y" not in lean.depths
