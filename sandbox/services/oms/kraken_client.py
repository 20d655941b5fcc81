"""A small client of Kraken's private REST API, as the OMS uses it.

Requests are ``POST /0/private/<Method>`` with a form-encoded body that starts
with a nonce, signed the way Kraken documents it::

    API-Sign = base64( HMAC-SHA512( key     = base64decode(api_secret),
                                    message = uri_path + SHA256(nonce + postdata) ) )

Nonces grow strictly per key (microseconds since the epoch, bumped past the
last one issued). Kraken answers HTTP 200 with ``{"error": [...], "result": ...}``;
numbers are parsed as ``Decimal`` from the raw JSON tokens.

Retries are only where they are safe:

* read-only and idempotent calls (queries, ``Balance``, ``CancelOrder``) retry
  transport failures and transient errors with a short backoff;
* ``AddOrder`` is retried only when the venue provably did not run it (a nonce
  or rate-limit refusal, which Kraken checks before the method, or a
  connection that failed before the request was written). Any other failure
  raises :class:`KrakenUnknownOutcome`: the caller must find out whether the
  order exists (by its ``cl_ord_id`` / ``userref``) before doing anything else.

The key pair is never logged and not shown by ``repr``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

from sandbox.services.kit import decimal_json
from sandbox.services.oms.http_client import HttpError, HttpPool

log = logging.getLogger("sandbox.services.oms.kraken")

PRIVATE_PREFIX = "/0/private/"
#: Errors Kraken raises before running the method: the call did nothing and may be sent again.
NOT_EXECUTED = ("EAPI:Invalid nonce", "EAPI:Rate limit exceeded")
#: Transient conditions worth another try for calls that are safe to repeat.
TRANSIENT = ("EService:Busy", "EService:Unavailable", "EGeneral:Internal error", "EGeneral:Temporary lockout")
#: AddOrder errors that mean the order was refused (nothing exists at the venue). ``EService:Unavailable``,
#: ``EService:Busy`` and ``EGeneral:Internal error`` are not among them: under load Kraken answers them for
#: orders that went through, so they leave the outcome open.
REJECTIONS = (
    "EOrder:", "EGeneral:Invalid arguments", "EGeneral:Permission denied", "EQuery:", "EService:Market in",
    "EService:Deadline elapsed", "EAPI:Invalid key", "EAPI:Invalid signature", "EAPI:Feature disabled",
    "EFunding:",
)
#: Kraken's REST counter decays by 0.33-1 per second: wait long enough for it to allow a call.
RATE_LIMIT_BACKOFF_S = 1.0
RATE_LIMIT_BACKOFF_MAX_S = 8.0
QUERY_BATCH = 50
TRADES_BATCH = 20


def sign(path: str, nonce: str | int, postdata: str, secret_b64: str) -> str:
    """The ``API-Sign`` value of a private request to ``path`` whose body ``postdata`` carries ``nonce``."""
    try:
        key = base64.b64decode(secret_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("the Kraken API secret is not base64") from exc
    digest = hashlib.sha256(f"{nonce}{postdata}".encode()).digest()
    return base64.b64encode(hmac.new(key, path.encode() + digest, hashlib.sha512).digest()).decode()


class NonceSource:
    """Strictly increasing nonces for one key: microseconds since the epoch, never repeated."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> int:
        """A nonce larger than every one returned before."""
        now = int(self._clock() * 1_000_000)
        self._last = now if now > self._last else self._last + 1
        return self._last


def form_value(value: Any) -> str:
    """A parameter as Kraken expects it in a form body (Decimals plain, booleans lower-case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


_PLAIN = re.compile(r"^[A-Za-z0-9._~-]*$")


def _quote(text: str) -> str:
    # Most values (numbers, pair names, ids) need no escaping; quote_plus only for the others.
    return text if _PLAIN.match(text) else quote_plus(text)


def encode_form(nonce: int, params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str:
    """``nonce=<n>&k=v...`` (None values left out), form-encoded as ``urlencode`` would.

    A callable value is called now (a ``deadline`` computed when the request is signed).
    """
    items = params.items() if isinstance(params, Mapping) else params
    items = [(k, v() if callable(v) else v) for k, v in items]
    parts = [f"nonce={nonce}"]
    parts.extend(f"{_quote(k)}={_quote(form_value(v))}" for k, v in items if v is not None and k != "nonce")
    return "&".join(parts)


class KrakenError(Exception):
    """Base class of the client's errors."""


class KrakenApiError(KrakenError):
    """Kraken answered with error strings (``EOrder:Insufficient funds``...)."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__(", ".join(errors))
        self.errors = errors

    @property
    def not_executed(self) -> bool:
        """Kraken refused the call before running it (nonce or rate limit)."""
        return any(e.startswith(NOT_EXECUTED) for e in self.errors)

    @property
    def transient(self) -> bool:
        """A temporary condition: repeating a safe call may succeed."""
        return self.not_executed or any(e.startswith(TRANSIENT) for e in self.errors)

    @property
    def rejection(self) -> bool:
        """For ``AddOrder``: the order was refused (nothing was created)."""
        return bool(self.errors) and all(e.startswith(REJECTIONS) for e in self.errors)


class KrakenTransportError(KrakenError):
    """No usable answer (connection, timeout, HTTP error page, malformed body)."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class KrakenUnknownOutcome(KrakenError):
    """``AddOrder`` failed in a way that leaves open whether the venue accepted it."""


@dataclass(frozen=True)
class AddOrderResult:
    """What ``AddOrder`` answered: the order's txid(s) and description."""

    txids: list[str]
    description: str


class KrakenClient:
    """Private REST calls with one API key pair."""

    def __init__(self, base_url: str, api_key: str, api_secret: str, *, timeout: float = 5.0,
                 max_in_flight: int = 1, retries: int = 3, backoff_s: float = 0.05,
                 pool: HttpPool | None = None) -> None:
        """``base_url`` is the venue's REST base (``http://127.0.0.1:8080``); the secret is base64.

        ``max_in_flight`` bounds the private calls outstanding at once. Kraken
        refuses a nonce not above the key's last one, and requests on several
        connections can reach it out of order: with 1 (the default) calls go
        one after another and nonces always arrive in order; more needs a key
        with a nonce window (refusals are retried with a fresh nonce either way).
        """
        base64.b64decode(api_secret, validate=True)  # fail early (ValueError) on a malformed secret
        self._key = api_key
        self._secret = api_secret
        self._pool = pool or HttpPool(base_url, max_connections=max(2, max_in_flight), timeout=timeout,
                                      headers=False)
        self._in_flight = asyncio.Semaphore(max_in_flight)
        self.retries = retries
        self.backoff_s = backoff_s
        self.nonces = NonceSource()
        self.calls = 0

    def __repr__(self) -> str:
        return "KrakenClient(<key pair hidden>)"

    async def aclose(self) -> None:
        """Close the connections."""
        await self._pool.aclose()

    def signed(self, method: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> tuple[str, dict[str, str], str]:
        """``(path, headers, body)`` of a signed call (a fresh nonce each time)."""
        path = PRIVATE_PREFIX + method
        nonce = self.nonces.next()
        body = encode_form(nonce, params)
        headers = {
            "API-Key": self._key,
            "API-Sign": sign(path, nonce, body, self._secret),
            "Content-Type": "application/x-www-form-urlencoded; charset=utf-8",
            "Accept": "application/json",
        }
        return path, headers, body

    async def _once(self, method: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]],
                    timeout: float | None) -> Any:
        path = PRIVATE_PREFIX + method
        self.calls += 1

        def build() -> tuple[dict[str, str], bytes]:
            # Signed when a connection is ready, so requests leave in nonce order.
            _, headers, body = self.signed(method, params)
            return headers, body.encode()

        try:
            async with self._in_flight:
                resp = await self._pool.request("POST", path, build=build, timeout=timeout, idempotent=False)
        except HttpError as exc:
            raise KrakenTransportError(f"{method}: {exc}", sent=exc.sent) from None
        if resp.status != 200:
            raise KrakenTransportError(f"{method}: HTTP {resp.status}")
        try:
            doc = decimal_json.loads(resp.body)
        except ValueError:
            raise KrakenTransportError(f"{method}: the answer is not JSON") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("error", []), list):
            raise KrakenTransportError(f"{method}: unexpected answer shape")
        errors = [str(e) for e in doc.get("error") or [] if not str(e).startswith("W")]
        if errors:
            raise KrakenApiError(errors)
        if "result" not in doc:
            raise KrakenTransportError(f"{method}: no result in the answer")
        return doc["result"]

    async def call(self, method: str, params: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None, *,
                   safe: bool = True, timeout: float | None = None) -> Any:
        """Kraken's ``result`` of ``method``; retries as the module docstring says (``safe``: repeatable)."""
        params = list(params.items()) if isinstance(params, Mapping) else list(params or [])
        attempt = 0
        last: Exception | None = None
        while True:
            try:
                return await self._once(method, params, timeout)
            except KrakenApiError as exc:
                last = exc
                retry = exc.not_executed or (safe and exc.transient)
                if not retry or attempt >= self.retries:
                    if not safe and not exc.rejection and not exc.not_executed:
                        raise KrakenUnknownOutcome(f"{method}: {exc}") from exc
                    raise
            except KrakenTransportError as exc:
                last = exc
                if not (safe or not exc.sent) or attempt >= self.retries:
                    if not safe and exc.sent:
                        raise KrakenUnknownOutcome(f"{method}: {exc}") from exc
                    raise
            attempt += 1
            await asyncio.sleep(self._delay(attempt, last))

    # -- trading -----------------------------------------------------------------------------

    def _delay(self, attempt: int, error: Exception | None) -> float:
        """Backoff before retry ``attempt``: short, except after a rate-limit refusal (the counter must decay)."""
        if isinstance(error, KrakenApiError) and any("Rate limit" in e for e in error.errors):
            return min(RATE_LIMIT_BACKOFF_MAX_S, RATE_LIMIT_BACKOFF_S * 2 ** (attempt - 1))
        if isinstance(error, KrakenApiError) and error.not_executed:
            return 0.0  # a nonce that arrived out of order: a fresh one goes at once
        return self.backoff_s * 2 ** (attempt - 1)

    async def add_order(self, *, pair: str, side: str, ordertype: str, volume: Decimal, price: Decimal | None = None,
                        post_only: bool = False, userref: int | None = None, cl_ord_id: str | None = None,
                        timeinforce: str | None = None, deadline_s: float | None = None,
                        validate: bool = False) -> AddOrderResult:
        """``AddOrder``; never blindly repeated (see :class:`KrakenUnknownOutcome`).

        ``deadline_s``: the venue refuses the order if it arrives more than this
        many seconds after it was signed (Kraken's ``deadline``, RFC 3339), which
        bounds how long an unanswered order can still appear.
        """
        deadline = (lambda: rfc3339(time.time() + deadline_s)) if deadline_s is not None else None
        params: list[tuple[str, Any]] = [
            ("ordertype", ordertype), ("type", side), ("volume", volume), ("pair", pair), ("price", price),
            ("oflags", "post" if post_only else None), ("timeinforce", timeinforce), ("userref", userref),
            ("cl_ord_id", cl_ord_id), ("deadline", deadline), ("validate", True if validate else None),
        ]
        result = await self.call("AddOrder", params, safe=False)
        txids = result.get("txid") or [] if isinstance(result, dict) else []
        descr = result.get("descr", {}) if isinstance(result, dict) else {}
        return AddOrderResult([str(t) for t in txids], str(descr.get("order", "")) if isinstance(descr, dict) else "")

    async def cancel_order(self, *, txid: str | None = None, cl_ord_id: str | None = None) -> int:
        """``CancelOrder`` by txid or client order id; how many orders it cancelled."""
        if (txid is None) == (cl_ord_id is None):
            raise ValueError("give exactly one of txid and cl_ord_id")
        result = await self.call("CancelOrder", [("txid", txid), ("cl_ord_id", cl_ord_id)], safe=True)
        return int(result.get("count", 0)) if isinstance(result, dict) else 0

    # -- queries -----------------------------------------------------------------------------

    async def open_orders(self, *, trades: bool = False, userref: int | None = None,
                          cl_ord_id: str | None = None) -> dict[str, dict[str, Any]]:
        """``OpenOrders``: txid -> order info."""
        result = await self.call("OpenOrders", [("trades", trades or None), ("userref", userref),
                                                ("cl_ord_id", cl_ord_id)])
        return dict(result.get("open") or {})

    async def closed_orders(self, *, trades: bool = False, userref: int | None = None, cl_ord_id: str | None = None,
                            start: float | None = None, ofs: int = 0) -> tuple[dict[str, dict[str, Any]], int]:
        """``ClosedOrders`` (one page, newest first): (txid -> info, total count)."""
        result = await self.call("ClosedOrders", [
            ("trades", trades or None), ("userref", userref), ("cl_ord_id", cl_ord_id),
            ("start", _epoch(start)), ("ofs", ofs or None),
        ])
        return dict(result.get("closed") or {}), int(result.get("count", 0))

    async def query_orders(self, txids: Iterable[str], *, trades: bool = False) -> dict[str, dict[str, Any]]:
        """``QueryOrders`` for any number of txids (sent 50 at a time).

        Kraken fails a whole call with ``EOrder:Invalid order`` when one txid is
        unknown to it; such a batch is split until the unknown ones are found,
        and they are left out of the result.
        """
        ids = list(dict.fromkeys(txids))
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), QUERY_BATCH):
            out.update(await self._query_known(ids[i:i + QUERY_BATCH], trades))
        return out

    async def _query_known(self, ids: list[str], trades: bool) -> dict[str, dict[str, Any]]:
        try:
            return dict(await self.call("QueryOrders", [("txid", ",".join(ids)), ("trades", trades or None)]))
        except KrakenApiError as exc:
            if not any(e.startswith("EOrder:Invalid order") for e in exc.errors):
                raise
        if len(ids) == 1:
            return {}
        half = len(ids) // 2
        return {**await self._query_known(ids[:half], trades), **await self._query_known(ids[half:], trades)}

    async def query_trades(self, txids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """``QueryTrades`` for any number of trade txids (sent 20 at a time)."""
        ids = list(dict.fromkeys(txids))
        out: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), TRADES_BATCH):
            out.update(await self.call("QueryTrades", [("txid", ",".join(ids[i:i + TRADES_BATCH]))]))
        return out

    async def trades_history(self, *, start: float | None = None, ofs: int = 0) -> tuple[dict[str, dict[str, Any]], int]:
        """``TradesHistory`` (one page of 50, newest first): (trade txid -> info, total count)."""
        result = await self.call("TradesHistory", [("start", _epoch(start)), ("ofs", ofs or None)])
        return dict(result.get("trades") or {}), int(result.get("count", 0))

    async def all_trades(self, *, start: float | None = None, max_pages: int = 200) -> dict[str, dict[str, Any]]:
        """Every trade since ``start`` (all pages, bounded by ``max_pages``)."""
        out: dict[str, dict[str, Any]] = {}
        ofs = 0
        for _ in range(max_pages):
            page, count = await self.trades_history(start=start, ofs=ofs)
            out.update(page)
            ofs += len(page)
            if not page or ofs >= count:
                break
        return out

    async def balance(self) -> dict[str, Decimal]:
        """``Balance``: asset code (``ZUSD``, ``XXBT``) -> total."""
        result = await self.call("Balance")
        return {str(k): Decimal(str(v)) for k, v in (result or {}).items()}

    async def websockets_token(self) -> str:
        """``GetWebSocketsToken``: a token for the private WebSocket (use within 15 minutes)."""
        result = await self.call("GetWebSocketsToken")
        return str(result["token"])


_second: tuple[int, str] = (-1, "")


def rfc3339(epoch: float) -> str:
    """``2026-12-04T17:00:00.123Z`` (the seconds part is formatted once per second: every order sends one)."""
    global _second
    whole = int(epoch)
    if _second[0] != whole:
        _second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
    return f"{_second[1]}.{int(epoch % 1 * 1000):03d}Z"


def _epoch(value: float | None) -> str | None:
    return None if value is None else f"{value:.4f}"
