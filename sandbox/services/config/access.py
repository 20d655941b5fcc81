"""Who may do what in config-service.

Reads: any authenticated principal (every role). Writes (PUT, DELETE): the
``admin`` role, or a service account (token ``kind`` ``service``) holding the
scope ``config:write``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from sandbox.services.config.service import ConfigService
from sandbox.services.kit.auth import CurrentPrincipal, Principal
from sandbox.services.kit.errors import ServiceError

WRITE_SCOPE = "config:write"


def may_write(principal: Principal) -> bool:
    """True for admins and for service accounts with scope ``config:write``."""
    if "admin" in principal.roles:
        return True
    return principal.kind == "service" and WRITE_SCOPE in principal.scopes


async def config_writer(principal: CurrentPrincipal) -> Principal:
    """Dependency: the principal when it may write configuration, else 403."""
    if not may_write(principal):
        raise ServiceError(
            403, "forbidden", f"writing configuration requires the admin role or a service account with scope {WRITE_SCOPE}",
            detail={"held_roles": list(principal.roles), "held_scopes": list(principal.scopes), "kind": principal.kind},
        )
    return principal


async def get_service(request: Request) -> ConfigService:
    """The process's :class:`ConfigService` (503 until start-up finished)."""
    service = getattr(request.app.state, "config", None)
    if service is None:
        raise ServiceError(503, "starting", "config-service is still starting")
    return service


Writer = Annotated[Principal, Depends(config_writer)]
Service = Annotated[ConfigService, Depends(get_service)]
