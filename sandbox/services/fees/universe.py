"""Fee schedules from universe-service (``GET /v1/instruments/{symbol}/fees``, service token).

universe-service answers with the instrument's tiers (``taker`` / ``maker``
lists of ``{"volume", "percent"}``, Kraken's ``fees`` / ``fees_maker`` arrays of
``[volume, percent]`` are accepted as well) and ``fee_volume_currency``. The
fee currency (the quote) and its precision (``cost_decimals``) are read from
the same document when present, else from ``GET /v1/instruments/{symbol}``.
Numbers are parsed as Decimal from the raw JSON tokens.
"""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from typing import Any, Protocol
from urllib.parse import quote as urlquote

import httpx

from sandbox.services.fees.schedules import UniverseUnavailable
from sandbox.services.fees.tiers import FeeSchedule, ScheduleError, schedule_from_kraken

log = logging.getLogger("sandbox.services.fees.universe")


class HttpGetter(Protocol):
    """What the source needs from an HTTP client (the kit's ServiceClient fits)."""

    async def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """GET ``url``."""
        ...


def _tier_list(raw: object, what: str) -> list[list[object]] | None:
    """Tiers as ``[[volume, percent], ...]`` from either pairs or ``{"volume", "percent"}`` objects."""
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ScheduleError(f"{what} is not a list")
    out: list[list[object]] = []
    for item in raw:
        if isinstance(item, dict):
            out.append([item.get("volume"), item.get("percent")])
        else:
            out.append(item)  # validated by parse_tiers
    return out


def schedule_from_universe(symbol: str, fees: dict[str, Any], instrument: dict[str, Any] | None = None) -> FeeSchedule:
    """Build a schedule from universe-service documents (fees, and the instrument when needed).

    Accepts the fees document (``taker`` / ``maker``), an instrument (the same
    nested under ``fees``) or a Kraken AssetPairs entry (``fees`` / ``fees_maker``
    arrays). Raises :class:`ScheduleError` when they do not describe a usable schedule.
    """
    tiers_doc = fees["fees"] if isinstance(fees.get("fees"), dict) else fees
    taker = _tier_list(tiers_doc.get("taker", tiers_doc.get("fees")), "taker")
    maker = _tier_list(tiers_doc.get("maker", tiers_doc.get("fees_maker")), "maker")
    if taker is None:
        raise ScheduleError("the fee document has no taker tiers")
    pair: dict[str, Any] = {
        "fees": taker,
        "fees_maker": maker,
        "fee_volume_currency": tiers_doc.get("fee_volume_currency") or fees.get("fee_volume_currency") or "USD",
    }
    for key in ("quote", "cost_decimals", "quote_decimals", "pair_decimals"):
        for doc in (fees, instrument or {}):
            value = doc.get(key)
            if value is not None and key not in pair:
                pair[key] = value
    return schedule_from_kraken(symbol, pair, source="universe")


def needs_instrument(fees: dict[str, Any]) -> bool:
    """True when the fee document lacks the quote or its precision."""
    has_precision = any(isinstance(fees.get(k), int) for k in ("cost_decimals", "quote_decimals", "pair_decimals"))
    return not (isinstance(fees.get("quote"), str) and has_precision)


def _decode(response: httpx.Response) -> dict[str, Any]:
    try:
        doc = json.loads(response.content, parse_float=Decimal)
    except ValueError as exc:
        raise UniverseUnavailable(f"universe-service sent invalid JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise UniverseUnavailable("universe-service sent a non-object document")
    return doc


class UniverseSource:
    """A :class:`~sandbox.services.fees.schedules.ScheduleSource` over universe-service."""

    def __init__(self, client: HttpGetter) -> None:
        """``client`` has the universe base URL and authenticates as the fees service account."""
        self._client = client

    async def _get(self, path: str) -> dict[str, Any] | None:
        try:
            response = await self._client.get(path)
        except httpx.HTTPError as exc:
            raise UniverseUnavailable(f"universe-service unreachable: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:  # e.g. the service token could not be obtained (auth down)
            raise UniverseUnavailable(f"universe-service call failed: {exc}") from exc
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise UniverseUnavailable(f"universe-service answered HTTP {response.status_code} for {path}")
        return _decode(response)

    async def fetch(self, symbol: str) -> FeeSchedule | None:
        """The schedule of ``symbol`` from universe-service, or None when it does not know the symbol."""
        encoded = urlquote(symbol, safe="")
        fees = await self._get(f"/v1/instruments/{encoded}/fees")
        if fees is None:
            return None
        instrument = await self._get(f"/v1/instruments/{encoded}") if needs_instrument(fees) else None
        try:
            return schedule_from_universe(symbol, fees, instrument)
        except ScheduleError as exc:
            log.warning("unusable fee schedule from universe-service", extra={"symbol": symbol, "error": str(exc)})
            raise UniverseUnavailable(f"universe-service sent an unusable schedule for {symbol}: {exc}") from exc
