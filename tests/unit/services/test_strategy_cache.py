"""The strategy cache: versions only move forward, paging order, per-state counts."""

from __future__ import annotations

from sandbox.services.strategy_orchestrator.cache import CachedStrategy, StrategyCache


def item(sid: str, version: int, state: str = "registered", kind: str = "mm") -> CachedStrategy:
    """A cached strategy with a body naming its version."""
    return CachedStrategy(sid, version, state, kind, f'{{"id":"{sid}","version":{version}}}'.encode())


def test_an_older_version_never_replaces_a_newer_one() -> None:
    cache = StrategyCache()
    assert cache.put(item("a", 5))
    assert not cache.put(item("a", 4))
    assert not cache.put(item("a", 5))
    assert cache.get("a").version == 5  # type: ignore[union-attr]
    assert cache.put(item("a", 9, "starting"))
    assert cache.get("a").state == "starting" and cache.get("a").etag == '"9"'  # type: ignore[union-attr]
    assert cache.get("missing") is None


def test_ids_stay_sorted_across_inserts() -> None:
    cache = StrategyCache()
    for sid in ("m", "b", "z"):
        cache.put(item(sid, 1))
    assert cache.ids() == ["b", "m", "z"]
    cache.put(item("a", 2))
    cache.put(item("m", 3))
    assert cache.ids() == ["a", "b", "m", "z"]


def test_state_counts_follow_changes_and_are_published() -> None:
    published: list[dict[str, int]] = []
    cache = StrategyCache(lambda counts: published.append(dict(counts)))
    cache.put(item("a", 1))
    cache.put(item("b", 2))
    cache.put(item("a", 3, "starting"))
    cache.put(item("a", 4, "starting", kind="other"))  # same state: nothing to publish
    cache.put(item("a", 5, "running"))
    assert cache.counts() == {"registered": 1, "running": 1}
    assert published[-1] == {"registered": 1, "starting": 0, "running": 1}
    assert len(published) == 4
