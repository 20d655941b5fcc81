"""Users: ``/v1/users`` (admins) and ``/v1/me``."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from sandbox.services.auth import users
from sandbox.services.auth.models import USERNAME_PATTERN, Me, UserCreate, UserList, UserPublic, UserUpdate
from sandbox.services.auth.tokens import AuthState, auth_state
from sandbox.services.kit import CurrentPrincipal, Db, ServiceError, require_roles
from sandbox.services.kit.auth import Principal

log = logging.getLogger("sandbox.services.auth")
router = APIRouter(prefix="/v1", tags=["users"])
State = Annotated[AuthState, Depends(auth_state)]
Admin = Annotated[Principal, Depends(require_roles("admin"))]
UsernamePath = Annotated[str, Path(pattern=USERNAME_PATTERN)]


def _not_found(username: str) -> ServiceError:
    return ServiceError(404, "user_not_found", f"no user {username!r}")


@router.post("/users", status_code=201, response_model=UserPublic, responses={409: {}, 403: {}, 401: {}})
async def create_user(body: UserCreate, db: Db, admin: Admin) -> dict:
    """Create a user (admins only)."""
    row = await users.create(db, body.username, body.password, list(body.roles), body.disabled)
    if row is None:
        raise ServiceError(409, "user_exists", f"user {body.username!r} already exists")
    log.info("user created", extra={"username": body.username, "roles": body.roles, "by": admin.subject})
    return users.public(row)


@router.get("/users", response_model=UserList, responses={403: {}, 401: {}})
async def list_users(
    db: Db, _: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> dict:
    """A page of users ordered by username (admins only)."""
    rows = await users.list_users(db, limit, offset)
    return {"items": [users.public(r) for r in rows], "limit": limit, "offset": offset}


@router.get("/users/{username}", response_model=UserPublic, responses={404: {}, 403: {}, 401: {}})
async def get_user(username: UsernamePath, db: Db, principal: CurrentPrincipal) -> dict:
    """One user (admins, or the user themself)."""
    if principal.subject != username and not principal.has_role("admin"):
        raise ServiceError(403, "forbidden", "only admins may read other users")
    row = await users.get(db, username)
    if row is None:
        raise _not_found(username)
    return users.public(row)


@router.patch("/users/{username}", response_model=UserPublic, responses={404: {}, 409: {}, 403: {}, 401: {}})
async def update_user(username: UsernamePath, body: UserUpdate, db: Db, admin: Admin, state: State) -> dict:
    """Change roles, disable/enable, or set a password (admins only).

    Any change revokes the user's sessions, so new roles or a disabled account
    take effect at once in every service. Admins cannot disable themselves or
    drop their own admin role.
    """
    if username == admin.subject and (body.disabled or (body.roles is not None and "admin" not in body.roles)):
        raise ServiceError(409, "cannot_lock_out_self", "admins cannot disable themselves or drop their own admin role")
    row = await users.update(db, username, roles=body.roles, disabled=body.disabled, password=body.password)
    if row is None:
        raise _not_found(username)
    changed = sorted(f for f in ("roles", "disabled", "password") if getattr(body, f) is not None)
    if changed:
        revoked = await state.sessions.revoke_user(username)
        log.info("user updated", extra={"username": username, "fields": changed, "revoked": revoked, "by": admin.subject})
    return users.public(row)


@router.get("/me", response_model=Me, responses={401: {}})
async def me(principal: CurrentPrincipal) -> Me:
    """The caller, as its token describes it."""
    return Me(subject=principal.subject, roles=list(principal.roles), kind=principal.kind,
              scopes=list(principal.scopes), sid=principal.sid)
