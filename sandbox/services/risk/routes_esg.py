"""``/v1/esg/exclusions``: assets excluded on ESG grounds (read: any role; write: risk-officer, admin)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from sandbox.services.kit.errors import ServiceError
from sandbox.services.risk import store_esg
from sandbox.services.risk.models import (
    ASSET_PATTERN,
    EsgExclusionCreate,
    EsgExclusionList,
    EsgExclusionPublic,
    EsgExclusionUpdate,
)
from sandbox.services.risk.roles import READERS, Writer
from sandbox.services.risk.runtime import Risk
from sandbox.services.risk.views import esg_public

router = APIRouter(prefix="/v1/esg/exclusions", tags=["esg"])

AssetPath = Annotated[str, Path(pattern=ASSET_PATTERN, max_length=16, description="Asset code, e.g. XBT.")]


@router.get("", dependencies=[READERS], summary="List ESG exclusions")
async def list_exclusions(risk: Risk) -> EsgExclusionList:
    """Every exclusion (from memory)."""
    items = [esg_public(e) for _, e in sorted(risk.state.esg_entries.items())]
    return EsgExclusionList(items=items, count=len(items))


@router.get("/{asset}", dependencies=[READERS], summary="Get an ESG exclusion")
async def get_exclusion(asset: AssetPath, risk: Risk) -> EsgExclusionPublic:
    """One exclusion (404 ``esg_exclusion_not_found``)."""
    found = risk.state.esg_entries.get(asset.upper())
    if found is None:
        raise ServiceError(404, "esg_exclusion_not_found", f"{asset.upper()} is not excluded")
    return esg_public(found)


@router.post("", status_code=status.HTTP_201_CREATED, summary="Exclude an asset (risk-officer)",
             responses={409: {"description": "Already excluded"}})
async def create_exclusion(body: EsgExclusionCreate, risk: Risk, who: Writer) -> EsgExclusionPublic:
    """Exclude an asset; audited."""
    exclusion = await store_esg.create_exclusion(risk.pools["esg"], who, body.asset, body.reason, body.score)
    await risk.refresh("esg_exclusion")
    return esg_public(exclusion)


@router.put("/{asset}", summary="Create or replace an exclusion (risk-officer)",
            responses={201: {"model": EsgExclusionPublic, "description": "Created"}})
async def put_exclusion(
    asset: AssetPath, body: EsgExclusionUpdate, response: Response, risk: Risk, who: Writer
) -> EsgExclusionPublic:
    """201 when new, else 200; audited."""
    exclusion, created = await store_esg.put_exclusion(risk.pools["esg"], who, asset.upper(), body.reason, body.score)
    await risk.refresh("esg_exclusion")
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return esg_public(exclusion)


@router.delete("/{asset}", status_code=204, summary="Lift an exclusion (risk-officer)")
async def delete_exclusion(asset: AssetPath, risk: Risk, who: Writer) -> Response:
    """Remove an exclusion; audited."""
    if await store_esg.delete_exclusion(risk.pools["esg"], who, asset.upper()) is None:
        raise ServiceError(404, "esg_exclusion_not_found", f"{asset.upper()} is not excluded")
    await risk.refresh("esg_exclusion")
    return Response(status_code=204)
