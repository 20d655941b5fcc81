"""``/v1/accounts/{account}/kraken-keys``: store, list, update, delete and reveal Kraken key pairs."""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from sandbox.services.kit.auth import Principal, authenticated, require_roles
from sandbox.services.kit.deps import Db
from sandbox.services.kit.errors import ServiceError
from sandbox.services.secrets import store
from sandbox.services.secrets.models import (
    ACCOUNT_PATTERN,
    AccountPermissions,
    KrakenKeyCreate,
    KrakenKeyList,
    KrakenKeyPublic,
    KrakenKeyRevealed,
    KrakenKeyUpdate,
)
from sandbox.services.secrets.runtime import AccountView, SecretsState, State, actor_of, anonymous_actor, dumps

log = logging.getLogger("sandbox.services.secrets")

REVEAL_SCOPE = "secrets:reveal"
READ_ROLES = ("risk-officer", "trader", "viewer", "service")

router = APIRouter(prefix="/v1/accounts/{account}", tags=["kraken-keys"])

AccountPath = Annotated[str, Path(min_length=1, max_length=64, pattern=ACCOUNT_PATTERN,
                                  description="Trading account the keys belong to.")]
KeyIdPath = Annotated[uuid.UUID, Path(description="Key id returned at creation.")]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
Reader = Annotated[Principal, Depends(require_roles(*READ_ROLES))]

_JSON = "application/json"
_bearer = HTTPBearer(auto_error=False, description="Service access token with scope secrets:reveal.")
_ACCOUNT_RE = re.compile(ACCOUNT_PATTERN)
_ERRORS: dict[int | str, dict[str, Any]] = {401: {"description": "Missing, invalid or revoked token"},
                                            403: {"description": "Role not allowed"}}


async def account_view(state: SecretsState, db: Db, account: str) -> AccountView:
    """The account's metadata, from the cache when it holds it, else from the database (then cached)."""
    view = state.cache.get(account)
    if view is not None:
        state.metrics.cache.labels("hit").inc()
        return view
    state.metrics.cache.labels("miss").inc()
    token = state.cache.begin(account)
    view = AccountView.build(account, await store.list_keys(db, account))
    state.cache.put(account, token, view)
    return view


@router.post("/kraken-keys", status_code=status.HTTP_201_CREATED, response_model=KrakenKeyPublic,
             responses={**_ERRORS, 409: {"description": "Duplicate API key or label, or too many keys"}},
             summary="Store a Kraken key pair (admin)")
async def create_key(account: AccountPath, body: KrakenKeyCreate, principal: Admin, state: State, db: Db,
                     ) -> Response:
    """Encrypt and store a key pair; the response carries metadata only."""
    created = await store.create_key(db, state.ring, account, body, actor_of(principal))
    state.cache.evict(account)
    state.metrics.writes.labels("create").inc()
    log.info("kraken key stored", extra={"account": account, "key_id": created["key_id"], "actor": principal.subject})
    return Response(dumps(created), status_code=status.HTTP_201_CREATED, media_type=_JSON,
                    headers={"Location": f"/v1/accounts/{account}/kraken-keys/{created['key_id']}"})


@router.get("/kraken-keys", response_model=KrakenKeyList, responses=_ERRORS,
            summary="List an account's key pairs (metadata only)")
async def list_keys(account: AccountPath, _: Reader, state: State, db: Db) -> Response:
    """Metadata of every key pair of the account: label, permissions, fingerprint, last 4 characters of the API key."""
    return Response((await account_view(state, db, account)).list_json, media_type=_JSON)


@router.get("/kraken-keys/{key_id}", response_model=KrakenKeyPublic,
            responses={**_ERRORS, 404: {"description": "No such key in the account"}},
            summary="One key pair's metadata")
async def get_key(account: AccountPath, key_id: KeyIdPath, _: Reader, state: State, db: Db) -> Response:
    """Metadata of one key pair (never the secret)."""
    body = (await account_view(state, db, account)).key_json.get(str(key_id))
    if body is None:
        raise ServiceError(404, "key_not_found", f"no key {key_id} in account {account!r}")
    return Response(body, media_type=_JSON)


@router.patch("/kraken-keys/{key_id}", response_model=KrakenKeyPublic,
              responses={**_ERRORS, 404: {"description": "No such key"}, 409: {"description": "Duplicate label"}},
              summary="Change a key pair's label or permissions (admin)")
async def update_key(account: AccountPath, key_id: KeyIdPath, body: KrakenKeyUpdate, principal: Admin,
                     state: State, db: Db) -> Response:
    """Update metadata; to replace the key material, create a new key pair and delete this one."""
    updated = await store.update_key(db, account, key_id, body, actor_of(principal))
    state.cache.evict(account)
    state.metrics.writes.labels("update").inc()
    return Response(dumps(updated), media_type=_JSON)


@router.delete("/kraken-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**_ERRORS, 404: {"description": "No such key"}}, summary="Delete a key pair (admin)")
async def delete_key(account: AccountPath, key_id: KeyIdPath, principal: Admin, state: State, db: Db) -> Response:
    """Delete the key pair and its ciphertext; the audit trail keeps the event."""
    await store.delete_key(db, account, key_id, actor_of(principal))
    state.cache.evict(account)
    state.metrics.writes.labels("delete").inc()
    log.info("kraken key deleted", extra={"account": account, "key_id": str(key_id), "actor": principal.subject})
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/permissions", response_model=AccountPermissions, responses=_ERRORS,
            summary="The account's key permissions (metadata, for policy-service)")
async def account_permissions(account: AccountPath, _: Reader, state: State, db: Db) -> Response:
    """Permissions per key and their union; an account without keys has none."""
    return Response((await account_view(state, db, account)).permissions_json, media_type=_JSON)


@router.post(
    "/kraken-keys/{key_id}/reveal", response_model=KrakenKeyRevealed,
    responses={401: {"description": "Missing, invalid or revoked token (audited)"},
               403: {"description": "Not a service identity with scope secrets:reveal (audited)"},
               404: {"description": "No such key (audited)"},
               409: {"description": "Stored ciphertext failed authentication: integrity_error (audited)"},
               422: {"description": "Malformed account or key id (audited)"}},
    summary="Reveal a key pair (service identities with scope secrets:reveal only; always audited)",
)
async def reveal_key(
    request: Request, account: str, key_id: str, state: State, db: Db,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Decrypt and return a key pair. Every attempt, allowed or not, is written to the audit trail."""
    try:
        principal = await authenticated(request, credentials)
    except ServiceError as exc:
        if exc.status == 401:
            await _deny(state, db, anonymous_actor(), account, key_id, f"unauthenticated: {exc.message}")
        raise
    actor = actor_of(principal)
    if principal.kind != "service" or REVEAL_SCOPE not in principal.scopes:
        why = "not a service identity" if principal.kind != "service" else f"missing scope {REVEAL_SCOPE}"
        await _deny(state, db, actor, account, key_id, why)
        raise ServiceError(
            403, "reveal_forbidden",
            f"reveal is reserved to service identities (token kind 'service') holding scope '{REVEAL_SCOPE}': {why}",
        )
    kid = _parse_key_id(key_id)
    if not _ACCOUNT_RE.match(account) or kid is None:
        await store.audit(db, actor, "key.reveal", "failed", account=account, key_id=key_id, reason="invalid_request")
        state.metrics.reveals.labels("failed").inc()
        raise ServiceError(422, "invalid_request", "account must match " + ACCOUNT_PATTERN + " and key_id must be a UUID")
    try:
        revealed = await store.reveal(db, state.ring, account, kid, actor)
    except ServiceError as exc:
        state.metrics.reveals.labels("failed").inc()
        if exc.code == "integrity_error":
            state.metrics.integrity_failures.inc()
            log.error("stored ciphertext failed authentication",
                      extra={"account": account, "key_id": key_id, "actor": principal.subject})
        elif exc.code == "key_version_unavailable":
            log.error("record sealed under a key version this replica lacks", extra={"key_id": key_id})
        raise
    state.metrics.reveals.labels("success").inc()
    log.info("kraken key revealed", extra={"account": account, "key_id": key_id, "actor": principal.subject})
    doc = KrakenKeyRevealed(key_id=revealed.key_id, account=revealed.account, label=revealed.label,
                            api_key=revealed.api_key, private_key=revealed.private_key,
                            permissions=revealed.permissions, key_version=revealed.key_version)
    return Response(doc.model_dump_json(), media_type=_JSON,
                    headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _deny(state: SecretsState, db: Db, actor: store.Actor, account: str, key_id: str, reason: str) -> None:
    await store.audit(db, actor, "key.reveal", "denied", account=account, key_id=key_id, reason=reason)
    state.metrics.reveals.labels("denied").inc()
    log.warning("reveal denied", extra={"account": account[:80], "key_id": key_id[:80], "actor": actor.subject,
                                        "reason": reason})


def _parse_key_id(text: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(text)
    except ValueError:
        return None
