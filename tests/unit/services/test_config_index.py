"""The in-memory version index of config-service."""

from __future__ import annotations

from sandbox.services.config.index import KeyState, VersionIndex


def test_apply_only_newer_changes() -> None:
    index = VersionIndex()
    first = index.apply("risk", "limit", KeyState(1, False, 10))
    assert first is not None and first.previous is None
    assert index.apply("risk", "limit", KeyState(1, False, 10)) is None  # same change again
    assert index.apply("risk", "limit", KeyState(0, False, 5)) is None  # older
    change = index.apply("risk", "limit", KeyState(2, False, 11))
    assert change is not None and change.previous == KeyState(1, False, 10)
    assert index.get("risk", "limit") == KeyState(2, False, 11)
    assert index.get("risk", "other") is None and index.get("nope", "limit") is None


def test_revision_live_keys_and_namespaces() -> None:
    index = VersionIndex()
    index.apply("b", "k2", KeyState(1, False, 1))
    index.apply("b", "k1", KeyState(1, False, 2))
    index.apply("a", "x", KeyState(1, False, 3))
    assert index.live_keys("b") == ["k1", "k2"]
    assert index.revision("b") == 2 and index.revision("zzz") == 0
    assert index.namespaces() == [("a", 1, 3), ("b", 2, 2)]
    generation = index.generation
    index.apply("b", "k1", KeyState(2, True, 4))  # delete
    assert index.generation == generation + 1
    assert index.live_keys("b") == ["k2"]
    assert index.revision("b") == 4
    index.apply("a", "x", KeyState(2, True, 5))
    assert index.namespaces() == [("b", 1, 4)]  # a has no live key left
    index.apply("a", "x", KeyState(3, False, 6))  # re-created
    assert index.namespaces() == [("a", 1, 6), ("b", 1, 4)]
    assert index.current_versions() == {("a", "x"): 3, ("b", "k2"): 1}
