"""Keys: ``GET /.well-known/jwks.json``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> JSONResponse:
    """The public signing keys (Ed25519, ``OKP``) every service verifies tokens with."""
    return JSONResponse(request.app.state.auth.jwks, headers={"Cache-Control": "public, max-age=300"})
