"""Conditional-request headers: ETags, ``If-None-Match`` and ``If-Match``.

A key's ETag is its version in quotes (``"7"``), so the ETag a client read can
be sent back unchanged as ``If-Match`` to update exactly that version; a bare
number (``If-Match: 7``) is accepted too. Namespace pages use ``"r<revision>"``.
"""

from __future__ import annotations

from sandbox.services.config.models import VERSION_MAX


class PreconditionInvalid(ValueError):
    """An ``If-Match`` value (or expected version) that cannot be used; the message says why."""


def key_etag(version: int) -> str:
    """The strong ETag of a key at ``version``."""
    return f'"{version}"'


def revision_etag(revision: int) -> str:
    """The strong ETag of a namespace page at ``revision``."""
    return f'"r{revision}"'


def none_match(header: str | None, etag: str) -> bool:
    """True when ``If-None-Match`` names ``etag`` (weak comparison, ``*`` matches anything)."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


def parse_if_match(header: str | None) -> int | None:
    """The version named by ``If-Match`` (``"7"`` or ``7``), or None when the header is absent.

    Raises :class:`PreconditionInvalid` for lists, ``*``, weak tags and non-numbers: a write
    must name exactly one version.
    """
    if header is None:
        return None
    tag = header.strip()
    if tag == "*":
        raise PreconditionInvalid("If-Match: * is not supported; name the version you expect, e.g. If-Match: \"3\"")
    if tag.startswith("W/"):
        raise PreconditionInvalid("If-Match needs a strong ETag; send the version, e.g. If-Match: \"3\"")
    if len(tag) >= 2 and tag[0] == '"' and tag[-1] == '"':
        tag = tag[1:-1]
    if not tag.isascii() or not tag.isdigit() or len(tag) > 19:
        raise PreconditionInvalid(f"If-Match must be one version number, got {header[:40]!r}")
    version = int(tag)
    if version > VERSION_MAX:
        raise PreconditionInvalid("If-Match version out of range")
    return version


def resolve_expected(if_match: str | None, body_or_query: int | None) -> int | None:
    """Combine ``If-Match`` with ``expected_version`` (body or query); None when neither is given.

    Raises :class:`PreconditionInvalid` when both are given and disagree.
    """
    header = parse_if_match(if_match)
    if header is not None and body_or_query is not None and header != body_or_query:
        raise PreconditionInvalid(
            f"If-Match ({header}) and expected_version ({body_or_query}) disagree; send one of them"
        )
    return header if header is not None else body_or_query
