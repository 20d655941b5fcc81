"""``/v1/namespaces``: which namespaces exist."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sandbox.services.config.access import Service
from sandbox.services.config.models import NamespaceListPublic
from sandbox.services.kit.auth import CurrentPrincipal

router = APIRouter(prefix="/v1/namespaces", tags=["namespaces"])


@router.get(
    "",
    response_model=NamespaceListPublic,
    responses={401: {"description": "Missing, invalid or revoked token"}},
    summary="List namespaces holding at least one key",
)
async def list_namespaces(service: Service, _: CurrentPrincipal) -> Response:
    """Any authenticated role: each namespace with its live key count and revision, sorted by name."""
    return Response(service.namespaces_body(), media_type="application/json")
