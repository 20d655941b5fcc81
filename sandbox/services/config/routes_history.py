"""``/v1/config/{namespace}/{key}/history``: every version of a key."""

from __future__ import annotations

from fastapi import APIRouter, Response

from sandbox.services.config.access import Service
from sandbox.services.config.models import HistoryPublic
from sandbox.services.config.params import HistoryBefore, HistoryLimit, KeyPath, NamespacePath
from sandbox.services.kit.auth import CurrentPrincipal

router = APIRouter(prefix="/v1/config", tags=["history"])


@router.get(
    "/{namespace}/{key}/history",
    response_model=HistoryPublic,
    responses={
        401: {"description": "Missing, invalid or revoked token"},
        404: {"description": "The key never existed"},
        422: {"description": "Invalid namespace, key or parameter"},
    },
    summary="Versions of a key, newest first (who, when, value)",
)
async def get_history(
    namespace: NamespacePath,
    key: KeyPath,
    service: Service,
    _: CurrentPrincipal,
    before: HistoryBefore = None,
    limit: HistoryLimit = 50,
) -> Response:
    """Any authenticated role. Deletes appear as versions with op ``delete`` and a null value."""
    body = await service.history_body(namespace, key, before, limit)
    return Response(body, media_type="application/json")
