"""Migration planning: ordering, validation, what is still to apply (no database)."""

from __future__ import annotations

import pytest

from sandbox.services.kit.db import Migration, MigrationError, plan_migrations

A = Migration(1, "init", "CREATE TABLE a ()")
B = Migration(2, "add_b", "CREATE TABLE b ()")
C = Migration(10, "add_c", "CREATE TABLE c ()")


def test_pending_migrations_come_in_version_order_whatever_the_list_order() -> None:
    assert plan_migrations([C, A, B], {}) == [A, B, C]


def test_applied_versions_are_skipped() -> None:
    assert plan_migrations([A, B, C], {1: "init", 2: "add_b"}) == [C]
    assert plan_migrations([A, B, C], {1: "init", 2: "add_b", 10: "add_c"}) == []


def test_a_gap_filled_later_is_still_applied() -> None:
    # version 2 added to the code after 10 ran: it is pending, not an error
    assert plan_migrations([A, B, C], {1: "init", 10: "add_c"}) == [B]


def test_duplicate_versions_are_refused() -> None:
    with pytest.raises(MigrationError, match="duplicate migration version 2"):
        plan_migrations([A, B, Migration(2, "other", "SELECT 1")], {})


@pytest.mark.parametrize("version", [0, -3])
def test_non_positive_versions_are_refused(version: int) -> None:
    with pytest.raises(MigrationError, match="must be positive"):
        plan_migrations([Migration(version, "x", "SELECT 1")], {})


def test_a_renamed_migration_that_already_ran_is_refused() -> None:
    with pytest.raises(MigrationError, match="recorded as 'init'"):
        plan_migrations([Migration(1, "renamed", "SELECT 1")], {1: "init"})


def test_migrations_are_immutable_values() -> None:
    with pytest.raises(AttributeError):
        A.version = 5  # type: ignore[misc]
