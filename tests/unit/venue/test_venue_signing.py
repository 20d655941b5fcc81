"""API-Sign: Kraken's documented example, verification, and what a client sends."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from sandbox.venue.trading.signing import new_api_key, new_api_secret, sign, signed_request, verify

# The worked example of Kraken's "Spot REST Authentication" guide (docs.kraken.com):
# a limit order to buy 1.25 XBTUSD at 37,500, signed with the guide's sample private key.
DOC_SECRET = "kQH5HW/8p1uGOVjbgWA7FunAmGO8lsSUXNsu3eow76sz84Q18fWxnyRzBHCd3pd5nE9qa99HAZtuZuj6F1huXg=="
DOC_NONCE = "1616492376594"
DOC_BODY = "nonce=1616492376594&ordertype=limit&pair=XBTUSD&price=37500&type=buy&volume=1.25"
DOC_PATH = "/0/private/AddOrder"
DOC_SIGNATURE = "4/dpxb3iT4tp/ZCVEwSnEsLxx0bqyhLpdfOpc6fn7OR8+UClSV5n9E6aSS8MPtnRfp32bAb0nmbRn6H8ndwLUQ=="


def test_sign_reproduces_krakens_documented_example() -> None:
    assert sign(DOC_PATH, DOC_NONCE, DOC_BODY, DOC_SECRET) == DOC_SIGNATURE
    assert sign(DOC_PATH, int(DOC_NONCE), DOC_BODY.encode(), DOC_SECRET) == DOC_SIGNATURE


def test_signed_request_builds_the_documented_body_and_headers() -> None:
    params = {"ordertype": "limit", "pair": "XBTUSD", "price": "37500", "type": "buy", "volume": "1.25"}
    headers, body = signed_request(DOC_PATH, params, "my-key", DOC_SECRET, DOC_NONCE)
    assert body == DOC_BODY
    assert headers["API-Key"] == "my-key"
    assert headers["API-Sign"] == DOC_SIGNATURE
    assert headers["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_signed_request_puts_the_nonce_first_and_writes_booleans_as_kraken_does() -> None:
    _, body = signed_request("/0/private/OpenOrders", [("trades", True), ("nonce", "9")], "k", DOC_SECRET, 5)
    assert parse_qsl(body) == [("nonce", "5"), ("trades", "true")]


@pytest.mark.parametrize(
    ("path", "nonce", "body"),
    [
        ("/0/private/CancelOrder", DOC_NONCE, DOC_BODY),  # another path
        (DOC_PATH, "1616492376595", DOC_BODY),  # another nonce
        (DOC_PATH, DOC_NONCE, DOC_BODY.replace("1.25", "1.26")),  # a changed body
    ],
)
def test_verify_rejects_any_change(path: str, nonce: str, body: str) -> None:
    assert verify(DOC_PATH, DOC_NONCE, DOC_BODY, DOC_SECRET, DOC_SIGNATURE)
    assert not verify(path, nonce, body, DOC_SECRET, DOC_SIGNATURE)


def test_verify_is_false_for_garbage_not_an_exception() -> None:
    assert not verify(DOC_PATH, DOC_NONCE, DOC_BODY, "not base64 !!", DOC_SIGNATURE)
    assert not verify(DOC_PATH, DOC_NONCE, DOC_BODY, DOC_SECRET, "")
    with pytest.raises(ValueError, match="base64"):
        sign(DOC_PATH, DOC_NONCE, DOC_BODY, "not base64 !!")


def test_generated_key_pairs_look_like_krakens_and_sign() -> None:
    secret = new_api_secret()
    assert len(secret) == 88 and len(new_api_key()) == 56
    signature = sign("/0/private/Balance", 1, "nonce=1", secret)
    assert verify("/0/private/Balance", 1, "nonce=1", secret, signature)
