"""``/v1/config``: read a namespace or a key, write and delete keys with optimistic concurrency."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from pydantic import TypeAdapter, ValidationError

from sandbox.services.config.access import Service, Writer
from sandbox.services.config.bodies import parse_write_body
from sandbox.services.config.models import (
    ConfigDeletedPublic,
    ConfigEntryPublic,
    ConfigWrite,
    Key,
    Namespace,
    NamespacePagePublic,
)
from sandbox.services.config.params import (
    AfterQuery,
    ExpectedVersionQuery,
    IfMatch,
    IfNoneMatch,
    KeyPath,
    NamespacePath,
    PageLimit,
)
from sandbox.services.config.preconditions import (
    PreconditionInvalid,
    key_etag,
    none_match,
    resolve_expected,
    revision_etag,
)
from sandbox.services.config.render import deleted_body, entry_body
from sandbox.services.kit.auth import CurrentPrincipal
from sandbox.services.kit.errors import ServiceError
from sandbox.services.kit.hot import FALLBACK, HotAnswer, HotCall, HotRoute

router = APIRouter(prefix="/v1/config", tags=["config"])

JSON = "application/json"
_ERRORS = {
    401: {"description": "Missing, invalid or revoked token"},
    404: {"description": "No such key (error key_not_found or key_deleted)"},
    422: {"description": "Invalid namespace, key or parameter"},
}
_WRITE_ERRORS = {
    **_ERRORS,
    400: {"description": "Unusable If-Match, or it disagrees with expected_version"},
    403: {"description": "Not an admin nor a service account with scope config:write"},
    409: {"description": "Stale version: detail.current_version is the current one"},
    413: {"description": "Value too large"},
    415: {"description": "Body is not JSON"},
}


def _cached_headers(etag: str) -> dict[str, str]:
    # no-cache: clients may store the body but must revalidate (If-None-Match) before reuse.
    return {"ETag": etag, "Cache-Control": "no-cache"}


def _expected(if_match: str | None, other: int | None) -> int | None:
    try:
        return resolve_expected(if_match, other)
    except PreconditionInvalid as exc:
        raise ServiceError(400, "invalid_precondition", str(exc)) from None


@router.get(
    "/{namespace}",
    response_model=NamespacePagePublic,
    responses={304: {"description": "Not modified (If-None-Match matched)"}, 401: _ERRORS[401], 422: _ERRORS[422]},
    summary="List a namespace's keys with their values (paged)",
)
async def get_namespace(
    namespace: NamespacePath,
    service: Service,
    _: CurrentPrincipal,
    after: AfterQuery = None,
    limit: PageLimit = 100,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """Any authenticated role. A namespace without keys answers an empty page (revision 0)."""
    etag = revision_etag(service.index.revision(namespace))
    if none_match(if_none_match, etag):
        return Response(status_code=304, headers=_cached_headers(etag))
    page = await service.namespace_page(namespace, after, limit)
    return Response(page.body, media_type=JSON, headers=_cached_headers(revision_etag(page.revision)))


@router.get(
    "/{namespace}/{key}",
    response_model=ConfigEntryPublic,
    responses={304: {"description": "Not modified (If-None-Match matched)"}, **_ERRORS},
    summary="Read one key at its current version",
)
async def get_key(
    namespace: NamespacePath, key: KeyPath, service: Service, _: CurrentPrincipal, if_none_match: IfNoneMatch = None
) -> Response:
    """Any authenticated role. ETag is the version in quotes; If-None-Match with it answers 304."""
    state = service.current(namespace, key)
    etag = key_etag(state.version)
    if none_match(if_none_match, etag):
        service.metrics.reads["not_modified"].inc()
        return Response(status_code=304, headers=_cached_headers(etag))
    body = await service.entry_body(namespace, key, state.version)
    return Response(body, media_type=JSON, headers=_cached_headers(etag))


_valid_namespace = TypeAdapter(Namespace).validate_python
_valid_key = TypeAdapter(Key).validate_python


async def _get_key_hot(call: HotCall) -> object:
    """:func:`get_key` on the kit's fast path (token checked); conditional GETs and bad names go to FastAPI."""
    service = getattr(call.state, "config", None)
    if service is None or call.header(b"if-none-match") is not None:
        return FALLBACK
    namespace, key = call.params["namespace"], call.params["key"]
    try:
        _valid_namespace(namespace)
        _valid_key(key)
    except ValidationError:
        return FALLBACK  # FastAPI answers the 422
    state = service.current(namespace, key)
    body = await service.entry_body(namespace, key, state.version)
    return HotAnswer(body, headers=((b"etag", key_etag(state.version).encode()), (b"cache-control", b"no-cache")))


#: The fast path of ``GET /v1/config/{namespace}/{key}`` (see sandbox.services.kit.hot).
HOT = HotRoute("GET", "/v1/config/{namespace}/{key}", _get_key_hot)


@router.put(
    "/{namespace}/{key}",
    response_model=ConfigEntryPublic,
    status_code=200,
    responses={201: {"description": "Created", "model": ConfigEntryPublic}, **_WRITE_ERRORS},
    openapi_extra={
        "requestBody": {"required": True, "content": {JSON: {"schema": ConfigWrite.model_json_schema()}}}
    },
    summary="Create or update a key (optimistic concurrency)",
)
async def put_key(
    namespace: NamespacePath,
    key: KeyPath,
    request: Request,
    service: Service,
    who: Writer,
    if_match: IfMatch = None,
) -> Response:
    """Admin, or a service account with scope ``config:write``.

    The write names the version it is based on (``If-Match`` or ``expected_version``);
    0 or neither creates a key that must not exist. A stale version answers 409 with
    the current version. 201 on create, 200 on update; the ETag is the new version.
    """
    body = parse_write_body(await request.body(), request.headers.get("content-type"), service.settings.max_value_bytes)
    expected = _expected(if_match, body.expected_version)
    written = await service.put(namespace, key, body.value_text, expected or 0, who.subject)
    v = written.version
    headers = {"ETag": key_etag(v.version)}
    status = 201 if v.op == "create" else 200
    if status == 201:
        headers["Location"] = f"/v1/config/{namespace}/{key}"
    return Response(entry_body(v), status_code=status, media_type=JSON, headers=headers)


@router.delete(
    "/{namespace}/{key}",
    response_model=ConfigDeletedPublic,
    responses={**_WRITE_ERRORS, 428: {"description": "No expected version given"}},
    summary="Delete a key (optimistic concurrency)",
)
async def delete_key(
    namespace: NamespacePath,
    key: KeyPath,
    service: Service,
    who: Writer,
    if_match: IfMatch = None,
    expected_version: ExpectedVersionQuery = None,
) -> Response:
    """Admin, or a service account with scope ``config:write``.

    Names the current version (``If-Match`` or ``?expected_version=``); the delete is
    recorded as a new version (a tombstone) in the history and notified like any change.
    """
    expected = _expected(if_match, expected_version)
    if expected is None:
        raise ServiceError(
            428, "version_required", "name the version to delete with If-Match or ?expected_version=",
        )
    written = await service.delete(namespace, key, expected, who.subject)
    return Response(deleted_body(written.version), media_type=JSON, headers={"ETag": key_etag(written.version.version)})
