"""The metadata cache of secrets-service: generations, enable switch, TTL, bound (pure)."""

from __future__ import annotations

from sandbox.services.secrets.cache import MetadataCache


def enabled(**kwargs: object) -> MetadataCache:
    cache = MetadataCache(**kwargs)  # type: ignore[arg-type]
    cache.enabled = True
    return cache


def test_put_then_get() -> None:
    cache = enabled()
    assert cache.put("a", cache.begin("a"), "view")
    assert cache.get("a") == "view"


def test_disabled_cache_neither_stores_nor_serves() -> None:
    cache = enabled()
    cache.put("a", cache.begin("a"), "view")
    cache.enabled = False
    assert cache.get("a") is None
    assert not cache.put("b", cache.begin("b"), "view")


def test_a_read_that_raced_an_eviction_is_not_stored() -> None:
    cache = enabled()
    token = cache.begin("a")  # read starts, sees the old rows
    cache.evict("a")  # a write commits meanwhile
    assert not cache.put("a", token, "stale")
    assert cache.get("a") is None
    assert cache.put("a", cache.begin("a"), "fresh")


def test_eviction_of_another_account_does_not_block() -> None:
    cache = enabled()
    token = cache.begin("a")
    cache.evict("b")
    assert cache.put("a", token, "view")


def test_clear_invalidates_in_flight_reads() -> None:
    cache = enabled()
    token = cache.begin("a")
    cache.clear()
    assert not cache.put("a", token, "stale")


def test_ttl_expires_entries() -> None:
    now = [0.0]
    cache = enabled(ttl_s=10.0, clock=lambda: now[0])
    cache.put("a", cache.begin("a"), "view")
    now[0] = 9.0
    assert cache.get("a") == "view"
    now[0] = 20.0
    assert cache.get("a") is None


def test_lru_bound() -> None:
    cache = enabled(max_entries=2)
    for name in ("a", "b"):
        cache.put(name, cache.begin(name), name)
    cache.get("a")  # a is now most recent
    cache.put("c", cache.begin("c"), "c")
    assert len(cache) == 2 and cache.get("b") is None and cache.get("a") == "a"


def test_generation_map_stays_bounded() -> None:
    cache = enabled(max_entries=2)
    for i in range(100):
        cache.evict(f"acct{i}")
    assert len(cache._generations) <= 8
