"""Parsing the body of a write (``PUT``) into a storable value and an expected version.

FastAPI's own body parsing would read numbers as binary floats; this reads the
raw bytes with :func:`.values.parse_json` (exact decimals), then validates the
document with :class:`.models.ConfigWrite` (strict, ``extra="forbid"``) and
the value with :func:`.values.check_value`. Problems become the kit's uniform
4xx bodies: 415 for a non-JSON content type, 422 for bad JSON or fields, 413
for an oversized value.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from sandbox.services.config.models import ConfigWrite
from sandbox.services.config.values import ValueRejected, check_value, dumps, encoded_size, parse_json
from sandbox.services.kit.errors import ServiceError


@dataclass(frozen=True, slots=True)
class WriteBody:
    """A validated write: the value as compact JSON text and the expected version from the body."""

    value_text: str
    expected_version: int | None


def is_json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type is JSON (``application/json``, ``application/*+json``); absent counts as JSON."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def parse_write_body(raw: bytes, content_type: str | None, max_value_bytes: int) -> WriteBody:
    """Validate a PUT body; raises :class:`ServiceError` or :class:`RequestValidationError`."""
    if not is_json_media_type(content_type):
        raise ServiceError(415, "unsupported_media_type", "send the body as application/json")
    if not raw.strip():
        raise ServiceError(422, "invalid_json", 'request body is empty; send {"value": ...}')
    try:
        document = parse_json(raw)
    except ValueRejected as exc:
        raise ServiceError(422, "invalid_json", str(exc)) from None
    if not isinstance(document, dict):
        raise ServiceError(422, "invalid_json", 'request body must be a JSON object: {"value": ..., "expected_version": N}')
    try:
        body = ConfigWrite.model_validate(document)
    except ValidationError as exc:
        errors = [
            {"loc": ("body", *err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None
    try:
        check_value(body.value)
        value_text = dumps(body.value)
    except ValueRejected as exc:
        raise ServiceError(422, "invalid_value", str(exc)) from None
    size = encoded_size(value_text)
    if size > max_value_bytes:
        raise ServiceError(
            413, "value_too_large", f"value is {size} bytes; at most {max_value_bytes} are accepted",
            detail={"size": size, "max_bytes": max_value_bytes},
        )
    return WriteBody(value_text, body.expected_version)
