"""Response caches of config-service: memory LRU and the disk directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sandbox.services.config.cache import DiskCache, MemoryCache


def test_memory_lru_bounded_by_bytes() -> None:
    cache = MemoryCache(10)
    cache.put(("n", "a", 1), b"aaaa")
    cache.put(("n", "b", 1), b"bbbb")
    assert cache.get(("n", "a", 1)) == b"aaaa"  # a is now most recent
    cache.put(("n", "c", 1), b"cccc")  # evicts b, the least recently used
    assert cache.get(("n", "b", 1)) is None
    assert cache.get(("n", "a", 1)) == b"aaaa" and cache.get(("n", "c", 1)) == b"cccc"
    assert cache.size == 8 and len(cache) == 2
    cache.put(("n", "big", 1), b"x" * 11)  # larger than the cache: not kept
    assert cache.get(("n", "big", 1)) is None
    cache.discard(("n", "a", 1))
    assert cache.size == 4
    cache.put(("n", "c", 1), b"cc")  # replace keeps the size right
    assert cache.size == 2


def test_disk_write_read_invalidate(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path / "cache")
    assert disk.usable
    assert disk.write("ns", "k", 1, b"one") and disk.write("ns", "k", 2, b"two")
    assert disk.path("ns", "k", 2) == tmp_path / "cache" / "ns" / "k" / "2.json"
    assert disk.read("ns", "k", 1) == b"one"
    assert disk.read("ns", "k", 3) is None
    assert disk.invalidate("ns", "k", keep=2) == 1
    assert sorted(p.name for p in (tmp_path / "cache" / "ns" / "k").iterdir()) == ["2.json"]
    assert not [p for p in (tmp_path / "cache").rglob(".tmp-*")]  # atomic writes leave no temp files
    assert disk.invalidate("ns", "k") == 1
    assert disk.invalidate("ns", "missing") == 0


def test_disk_prune_keeps_only_current_versions(tmp_path: Path) -> None:
    disk = DiskCache(tmp_path)
    disk.write("a", "k", 1, b"old")
    disk.write("a", "k", 2, b"new")
    disk.write("a", "gone", 4, b"deleted key")
    disk.write("b", "x", 7, b"x")
    (tmp_path / "a" / "k" / ".tmp-stray.json").write_bytes(b"half")
    removed = disk.prune({("a", "k"): 2, ("b", "x"): 7})
    assert removed == 3
    assert disk.read("a", "k", 2) == b"new" and disk.read("b", "x", 7) == b"x"
    assert not (tmp_path / "a" / "gone").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a read-only directory")
def test_unwritable_directory_disables_cache(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        disk = DiskCache(root)
        assert not disk.usable and disk.problem
        assert disk.write("a", "k", 1, b"x") is False
        assert disk.read("a", "k", 1) is None
    finally:
        root.chmod(0o700)


def test_cache_root_that_is_a_file_disables_cache(tmp_path: Path) -> None:
    root = tmp_path / "file"
    root.write_text("not a directory")
    disk = DiskCache(root)
    assert not disk.usable
    assert disk.write("a", "k", 1, b"x") is False
    assert disk.prune({}) == 0 and disk.invalidate("a", "k") == 0
