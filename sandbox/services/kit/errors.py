"""Uniform error bodies: ``{"error": "<code>", "message": "...", "detail": ...}``.

Domain code raises :class:`ServiceError`; validation errors become 422, HTTP
errors keep their status, and data errors from PostgreSQL caused by input
(bad encodings, out-of-range numbers, constraint violations) become 4xx rather
than 500 as a safety net, as does text that cannot be encoded (lone surrogates). Anything else is a logged 500 with no internals.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("sandbox.services.kit")


class ServiceError(Exception):
    """An error with an HTTP status, a stable machine code and a human message."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``code`` is a stable snake_case identifier clients may match on."""
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers


def status_code_name(status: int) -> str:
    """A snake_case code for an HTTP status (404 -> ``not_found``)."""
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_").replace("'", "")
    except ValueError:
        return "error"


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """The uniform error document."""
    return {"error": code, "message": message, "detail": detail}


def error_response(
    status: int, code: str, message: str, detail: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A JSONResponse carrying the uniform error document."""
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Errors without the raw input (may be large or binary) and with JSON-safe context."""
    out = []
    for err in exc.errors():
        item = {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        out.append(item)
    return jsonable_encoder(out)


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, exc.code, exc.message, exc.detail, exc.headers)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail
    if isinstance(detail, dict) and "error" in detail:
        return error_response(
            exc.status_code, str(detail["error"]), str(detail.get("message", "")), detail.get("detail"), exc.headers
        )
    message = detail if isinstance(detail, str) else status_code_name(exc.status_code).replace("_", " ")
    return error_response(
        exc.status_code,
        status_code_name(exc.status_code),
        message,
        None if isinstance(detail, str) else jsonable_encoder(detail),
        exc.headers,
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(422, "validation_error", "request validation failed", _validation_detail(exc))


async def _postgres_error(request: Request, exc: Exception) -> JSONResponse:
    """asyncpg errors: input-caused classes map to 4xx, the rest to 503/500."""
    sqlstate = getattr(exc, "sqlstate", "") or ""
    if sqlstate.startswith("22"):  # data exception: bad encoding, out of range, too long
        return error_response(422, "invalid_data", "a value was rejected by the database")
    if sqlstate == "23505":
        return error_response(409, "conflict", "the resource already exists")
    if sqlstate.startswith("23"):
        return error_response(409, "constraint_violation", "the change violates a constraint")
    if sqlstate == "40001" or sqlstate == "40P01":
        return error_response(409, "retry", "concurrent update, retry the request", headers={"Retry-After": "1"})
    log.error("database error", extra={"sqlstate": sqlstate, "error": type(exc).__name__, "path": request.url.path})
    return error_response(503, "database_unavailable", "the database could not serve the request")


async def _unicode_error(request: Request, exc: Exception) -> JSONResponse:
    """Lone surrogates ("\\ud800" in JSON) pass validation but cannot be encoded for Redis/PostgreSQL."""
    log.info("unencodable text in request", extra={"path": request.url.path})
    return error_response(422, "invalid_text", "the request contains text that is not valid Unicode")


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", extra={"path": request.url.path, "error": type(exc).__name__})
    return error_response(500, "internal", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the uniform handlers on ``app``."""
    import asyncpg

    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(asyncpg.PostgresError, _postgres_error)
    app.add_exception_handler(UnicodeError, _unicode_error)
    app.add_exception_handler(Exception, _unhandled)
