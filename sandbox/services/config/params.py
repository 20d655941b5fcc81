"""Path, query and header parameters shared by the routers (validated, bounded, documented)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Path, Query

from sandbox.services.config.models import KEY_MAX, KEY_PATTERN, NAMESPACE_MAX, NAMESPACE_PATTERN, VERSION_MAX

NamespacePath = Annotated[
    str,
    Path(pattern=NAMESPACE_PATTERN, min_length=1, max_length=NAMESPACE_MAX,
         description="Namespace: lowercase letters, digits, '_' and '-', starting with a letter, at most 63."),
]
KeyPath = Annotated[
    str,
    Path(pattern=KEY_PATTERN, min_length=1, max_length=KEY_MAX,
         description="Key: letters, digits, '.', '_' and '-', starting with a letter or digit, at most 128."),
]
IfNoneMatch = Annotated[
    str | None, Header(max_length=1024, description="ETag(s) the caller holds; a match answers 304 without a body.")
]
IfMatch = Annotated[
    str | None,
    Header(max_length=64, description='The version the write is based on, as its ETag ("3") or a bare number; 0 creates.'),
]
ExpectedVersionQuery = Annotated[
    int | None, Query(ge=0, le=VERSION_MAX, description="Alternative to If-Match for DELETE.")
]
AfterQuery = Annotated[
    str | None,
    Query(pattern=KEY_PATTERN, min_length=1, max_length=KEY_MAX, description="Return keys after this one (paging)."),
]
PageLimit = Annotated[int, Query(ge=1, le=1000, description="Most keys in one page.")]
HistoryBefore = Annotated[
    int | None, Query(ge=1, le=VERSION_MAX, description="Only versions older than this one (paging).")
]
HistoryLimit = Annotated[int, Query(ge=1, le=500, description="Most versions in one page.")]
