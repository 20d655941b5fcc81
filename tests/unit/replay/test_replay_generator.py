"""The seeded generator: determinism, Kraken precisions, realistic dynamics."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest

from sandbox.errors import InvalidInput
from sandbox.replay.book import V2Books, parse_frame
from sandbox.replay.generator import PRESETS, GeneratorConfig, generate, generate_file
from sandbox.replay.pairs import load_pairs
from sandbox.replay.protocol import parse_rfc3339

REPO = Path(__file__).resolve().parents[3]


def _frames(config: GeneratorConfig) -> list[dict]:
    return [parse_frame(r.frame) for r in generate(config) if r.dir == "recv"]


def test_same_seed_same_session_other_seed_other_session() -> None:
    config = GeneratorConfig(symbols=["BTC/USD"], duration_s=5, seed=3)
    assert list(generate(config)) == list(generate(GeneratorConfig(symbols=["BTC/USD"], duration_s=5, seed=3)))
    assert list(generate(config)) != list(generate(GeneratorConfig(symbols=["BTC/USD"], duration_s=5, seed=4)))


def test_numbers_carry_each_pairs_precision() -> None:
    frames = _frames(GeneratorConfig(symbols=["BTC/USD", "DOGE/USD", "XRP/USD"], duration_s=5, seed=5))
    decimals: dict[str, set[tuple[int, int]]] = {}
    for msg in frames:
        if msg.get("channel") == "book":
            for item in msg["data"]:
                for level in item["bids"] + item["asks"]:
                    pd = -level["price"].as_tuple().exponent
                    qd = -level["qty"].as_tuple().exponent
                    decimals.setdefault(item["symbol"], set()).add((pd, qd))
    assert decimals == {"BTC/USD": {(1, 8)}, "DOGE/USD": {(7, 8)}, "XRP/USD": {(5, 8)}}


def test_v1_writes_strings_with_five_price_decimals() -> None:
    records = list(generate(GeneratorConfig(api="v1", symbols=["XBT/USD"], channels=["book", "trade"], duration_s=3, seed=2)))
    snapshot = next(parse_frame(r.frame) for r in records if '"as":' in r.frame)
    price, qty, stamp = snapshot[1]["as"][0]
    assert len(price.split(".")[1]) == 5 and len(qty.split(".")[1]) == 8 and len(stamp.split(".")[1]) == 6


def test_precisions_come_from_the_assetpairs_fixture(tmp_path: Path) -> None:
    doc = {"error": [], "result": {"XXBTZUSD": {"wsname": "XBT/USD", "pair_decimals": 2, "lot_decimals": 6}}}
    (tmp_path / "assetpairs.json").write_text(json.dumps(doc))
    pairs = load_pairs(tmp_path / "assetpairs.json")
    assert (pairs["BTC/USD"].price_decimals, pairs["BTC/USD"].qty_decimals) == (2, 6)
    assert pairs["XBT/USD"] is pairs["BTC/USD"] and pairs["ETH/USD"].price_decimals == 2
    assert pairs["DOGE/USD"].v1 == "XDG/USD"


def test_trades_consume_the_levels_they_print_at() -> None:
    frames = _frames(GeneratorConfig(symbols=["ETH/USD"], channels=["book", "trade"], duration_s=30, seed=11))
    checked = 0
    for before, msg in zip(frames, frames[1:], strict=False):
        if msg.get("channel") != "trade":
            continue
        assert before.get("channel") == "book"  # the book moves in the same event, just before
        book_item, trades = before["data"][0], msg["data"]
        side = "asks" if trades[0]["side"] == "buy" else "bids"
        touched = {lv["price"]: lv["qty"] for lv in book_item[side]}
        for trade in trades:
            assert trade["price"] in touched
            assert book_item["timestamp"] == trade["timestamp"]
        checked += 1
    assert checked >= 5


def test_books_stay_uncrossed_with_a_mean_reverting_mid_and_bursty_activity() -> None:
    config = GeneratorConfig(symbols=["BTC/USD"], channels=["book", "trade"], duration_s=90, seed=13)
    books = V2Books()
    mids, per_second, heartbeats = [], Counter(), 0
    for msg in _frames(config):
        if msg.get("channel") == "heartbeat":
            heartbeats += 1
        for check in books.handle(msg):
            assert check.ok, check
            book = books.books["BTC/USD"]
            mids.append((book.best_bid.price + book.best_ask.price) / 2)
            per_second[int(parse_rfc3339(msg["data"][0]["timestamp"]))] += 1
    start = Decimal("63500.0")
    assert all(abs(mid - start) / start < Decimal("0.01") for mid in mids)
    assert len({round(m) for m in mids}) > 5  # it moves
    counts = [per_second.get(s, 0) for s in range(min(per_second), max(per_second) + 1)]
    assert max(counts) >= 3 * max(1, statistics.median(counts))  # bursts
    assert counts.count(0) > 0 or min(counts) * 4 <= statistics.median(counts)  # and lulls
    assert 85 <= heartbeats <= 95  # about one a second


def test_impossible_configurations_are_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        list(generate(GeneratorConfig(api="v3", symbols=["NOPE/USD"], depth=7)))
    problems = "\n".join(caught.value.problems)
    assert "api: must be v1 or v2" in problems and "depth: must be one of" in problems and "NOPE/USD" in problems


@pytest.mark.parametrize("name", ["v2-book10-alts-quiet"])
def test_shipped_fixture_regenerates_byte_for_byte(name: str, tmp_path: Path) -> None:
    shipped = REPO / "fixtures" / "kraken_replays" / f"{name}.ndjson.gz"
    if not shipped.exists():
        pytest.skip(f"{shipped} is not generated")
    generate_file(PRESETS[name], tmp_path / shipped.name, name=name)
    assert (tmp_path / shipped.name).read_bytes() == shipped.read_bytes()
