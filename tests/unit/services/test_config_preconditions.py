"""ETags and conditional headers of config-service."""

from __future__ import annotations

import pytest

from sandbox.services.config.preconditions import (
    PreconditionInvalid,
    key_etag,
    none_match,
    parse_if_match,
    resolve_expected,
    revision_etag,
)


def test_etags() -> None:
    assert key_etag(3) == '"3"'
    assert revision_etag(12) == '"r12"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ("", False), ('"3"', True), ('W/"3"', True), ('"2", "3"', True), ("*", True), ('"4"', False), ("3", False)],
)
def test_none_match(header: str | None, matches: bool) -> None:
    assert none_match(header, '"3"') is matches


@pytest.mark.parametrize(("header", "version"), [(None, None), ('"7"', 7), ("7", 7), (" 0 ", 0)])
def test_if_match_accepts_etag_or_number(header: str | None, version: int | None) -> None:
    assert parse_if_match(header) == version


@pytest.mark.parametrize("header", ["*", 'W/"3"', '"3", "4"', "abc", "-1", "", '"', "1" * 25, "٣"])
def test_if_match_rejects_everything_else(header: str) -> None:
    with pytest.raises(PreconditionInvalid):
        parse_if_match(header)


def test_resolve_expected() -> None:
    assert resolve_expected(None, None) is None
    assert resolve_expected('"2"', None) == 2
    assert resolve_expected(None, 5) == 5
    assert resolve_expected("5", 5) == 5
    with pytest.raises(PreconditionInvalid, match="disagree"):
        resolve_expected("4", 5)
