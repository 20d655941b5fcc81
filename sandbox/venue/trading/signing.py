"""Kraken's private REST request signature (``API-Sign``), for the venue and for its clients.

Kraken signs a private request with the API secret (base64 in the key pair)::

    API-Sign = base64( HMAC-SHA512( key    = base64decode(secret),
                                    message = URI path + SHA256(nonce + POST data) ) )

where the URI path is the part starting with ``/0/private`` and the POST data is
the exact body sent (form-encoded, ``nonce=...&pair=...``, or a JSON body).
:func:`sign` computes it, :func:`verify` checks one in constant time, and
:func:`signed_request` builds the headers and body a client sends, so the OMS
and the venue share one implementation.  The unit tests check :func:`sign`
against the worked example in Kraken's authentication guide.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from urllib.parse import urlencode

__all__ = ["new_api_key", "new_api_secret", "sign", "signed_request", "verify"]


def _message(path: str, nonce: str | int, postdata: str | bytes) -> bytes:
    body = postdata.encode() if isinstance(postdata, str) else postdata
    digest = hashlib.sha256(str(nonce).encode() + body).digest()
    return path.encode() + digest


def sign(path: str, nonce: str | int, postdata: str | bytes, secret_b64: str) -> str:
    """The ``API-Sign`` header value for a request to ``path`` (``/0/private/...``).

    ``nonce`` is the nonce exactly as it appears in ``postdata``; ``postdata``
    is the request body as sent.  Raises ``ValueError`` when ``secret_b64`` is
    not base64.
    """
    try:
        key = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the API secret is not valid base64") from exc
    mac = hmac.new(key, _message(path, nonce, postdata), hashlib.sha512)
    return base64.b64encode(mac.digest()).decode()


def verify(path: str, nonce: str | int, postdata: str | bytes, secret_b64: str, signature: str) -> bool:
    """True when ``signature`` is the ``API-Sign`` of this request (compared in constant time)."""
    try:
        expected = sign(path, nonce, postdata, secret_b64)
    except ValueError:
        return False
    return hmac.compare_digest(expected.encode(), (signature or "").strip().encode())


def signed_request(
    path: str,
    params: Mapping[str, object] | Iterable[tuple[str, object]],
    api_key: str,
    secret_b64: str,
    nonce: int | str,
) -> tuple[dict[str, str], str]:
    """Headers and form body of a signed private request, the way Kraken's clients build it.

    ``nonce`` goes first in the body, then ``params`` in their order (booleans
    as ``true``/``false``).  Returns ``(headers, body)``; POST ``body`` to
    ``path`` with those headers.
    """
    items = list(params.items()) if isinstance(params, Mapping) else list(params)
    pairs = [("nonce", str(nonce))] + [(k, _form_value(v)) for k, v in items if k != "nonce"]
    body = urlencode(pairs)
    headers = {
        "API-Key": api_key,
        "API-Sign": sign(path, nonce, body, secret_b64),
        "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
    }
    return headers, body


def _form_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def new_api_key() -> str:
    """A fresh public API key (56 URL-safe characters, like Kraken's)."""
    return secrets.token_urlsafe(42)


def new_api_secret() -> str:
    """A fresh private key: 64 random bytes, base64-encoded (88 characters, like Kraken's)."""
    return base64.b64encode(secrets.token_bytes(64)).decode()
