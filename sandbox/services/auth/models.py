"""Request and response models (Create / Update / Public split)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

Role = Literal["admin", "trader", "risk-officer", "viewer", "service"]
USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{2,63}$"
Username = Annotated[str, StringConstraints(pattern=USERNAME_PATTERN)]
# Any printable text; length bounded so hashing stays cheap. NUL is refused.
Password = Annotated[str, StringConstraints(min_length=10, max_length=1024, pattern=r"^[^\x00]+$")]
LoginName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]+$")]
LoginPassword = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Scope = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/*-]{1,64}$")]
Roles = Annotated[list[Role], Field(min_length=1, max_length=5)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _dedupe(roles: list[str] | None) -> list[str] | None:
    return None if roles is None else list(dict.fromkeys(roles))


class UserCreate(_Strict):
    """A new user."""

    username: Username
    password: Password
    roles: Roles
    disabled: bool = False

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[str] | None) -> list[str] | None:
        return _dedupe(value)


class UserUpdate(_Strict):
    """Changes to a user; omitted fields stay as they are."""

    roles: Roles | None = None
    disabled: bool | None = None
    password: Password | None = None

    @field_validator("roles")
    @classmethod
    def _unique_roles(cls, value: list[str] | None) -> list[str] | None:
        return _dedupe(value)


class UserPublic(BaseModel):
    """A user as shown to admins (never the password hash)."""

    username: str
    roles: list[str]
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserList(BaseModel):
    """A page of users."""

    items: list[UserPublic]
    limit: int
    offset: int


class LoginRequest(_Strict):
    """Username and password."""

    username: LoginName
    password: LoginPassword


class RefreshRequest(_Strict):
    """A refresh token from login or a previous refresh."""

    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class TokenPair(BaseModel):
    """Access token (JWT) plus an opaque refresh token."""

    access_token: str
    refresh_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    refresh_expires_in: int


class ServiceTokenRequest(_Strict):
    """Client credentials of a service account and the scopes asked for."""

    client_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    client_secret: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    scope: Annotated[list[Scope], Field(max_length=32)] = []


class ServiceToken(BaseModel):
    """An access token for a service account (no refresh token: ask again)."""

    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int
    scope: list[str]


class IntrospectRequest(_Strict):
    """The token to inspect."""

    token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]


class Introspection(BaseModel):
    """RFC 7662-like answer: ``active`` plus the claims when active."""

    model_config = ConfigDict(extra="allow")

    active: bool


class Me(BaseModel):
    """The caller as the token describes it."""

    subject: str
    roles: list[str]
    kind: str
    scopes: list[str]
    sid: str
