"""Parsing config-service write bodies: strict fields, exact values, clear 4xx errors."""

from __future__ import annotations

import json

import pytest
from fastapi.exceptions import RequestValidationError

from sandbox.services.config.bodies import is_json_media_type, parse_write_body
from sandbox.services.kit.errors import ServiceError


def test_valid_body_keeps_numbers_exact() -> None:
    body = parse_write_body(b'{"value": {"fee": 0.0026, "tiers": [1, 2.50]}, "expected_version": 3}', "application/json", 1000)
    assert body.value_text == '{"fee":0.0026,"tiers":[1,2.50]}'
    assert body.expected_version == 3
    assert parse_write_body(b'{"value": null}', None, 1000).expected_version is None


@pytest.mark.parametrize(
    ("raw", "loc_end"),
    [
        (b'{"value": 1, "extra": true}', "extra"),
        (b'{"expected_version": 1}', "value"),
        (b'{"value": 1, "expected_version": "3"}', "expected_version"),
        (b'{"value": 1, "expected_version": 1.0}', "expected_version"),
        (b'{"value": 1, "expected_version": true}', "expected_version"),
        (b'{"value": 1, "expected_version": -1}', "expected_version"),
    ],
)
def test_field_errors_are_422_with_location(raw: bytes, loc_end: str) -> None:
    with pytest.raises(RequestValidationError) as info:
        parse_write_body(raw, "application/json", 1000)
    locs = [err["loc"] for err in info.value.errors()]
    assert any(loc[0] == "body" and loc_end in loc for loc in locs), locs


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"", "invalid_json"),
        (b"[1]", "invalid_json"),
        (b'{"value": NaN}', "invalid_json"),
        (b'{"value": "a\\u0000b"}', "invalid_value"),
        (b'{"value": ' + b"[" * 40 + b"]" * 40 + b"}", "invalid_value"),
    ],
)
def test_bad_documents_are_422(raw: bytes, code: str) -> None:
    with pytest.raises(ServiceError) as info:
        parse_write_body(raw, "application/json", 1000)
    assert info.value.status == 422 and info.value.code == code


def test_value_size_limit_is_413() -> None:
    raw = json.dumps({"value": "x" * 200}).encode()
    with pytest.raises(ServiceError) as info:
        parse_write_body(raw, "application/json", 100)
    assert info.value.status == 413 and info.value.code == "value_too_large"
    assert info.value.detail == {"size": 202, "max_bytes": 100}


def test_non_json_content_type_is_415() -> None:
    with pytest.raises(ServiceError) as info:
        parse_write_body(b'{"value": 1}', "text/plain", 1000)
    assert info.value.status == 415
    assert is_json_media_type("application/json; charset=utf-8")
    assert is_json_media_type("application/merge-patch+json")
    assert not is_json_media_type("application/x-www-form-urlencoded")
