"""Kraken's public REST market-data endpoints, served from a fixture.

``GET /0/public/AssetPairs`` answers exactly as Kraken does: ``{"error": [],
"result": {PAIR_KEY: {...}}}``, with the optional ``pair`` filter (a comma
separated list of pair keys such as ``XXBTZUSD``, altnames such as ``XBTUSD``
or WebSocket names such as ``XBT/USD``, matched case-insensitively) and
``info`` (``info`` = everything, ``leverage``, ``fees`` or ``margin``).  An
unknown pair fails the whole request with ``{"error": ["EQuery:Unknown asset
pair"]}``, an unknown ``info`` with ``EGeneral:Invalid arguments``; like Kraken,
these API errors travel with HTTP 200.

Numbers are loaded as :class:`~decimal.Decimal` from the raw JSON tokens and
written back unchanged (``0.00`` stays ``0.00``): a float round trip would
change what clients parse.  ``SystemStatus``, ``Time`` and ``/healthz`` complete
the public surface.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import Response

from sandbox.errors import InvalidInput

#: Fields each ``info`` value selects (``info`` itself selects every field).
INFO_FIELDS: Mapping[str, tuple[str, ...]] = {
    "leverage": ("leverage_buy", "leverage_sell"),
    "fees": ("fees", "fees_maker", "fee_volume_currency"),
    "margin": ("margin_call", "margin_stop", "margin_level"),
}

#: Kraken's documented system states.
SYSTEM_STATES = ("online", "maintenance", "cancel_only", "post_only")

UNKNOWN_PAIR = "EQuery:Unknown asset pair"
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"


class UnknownAssetPair(LookupError):
    """A requested pair is not in the catalogue (Kraken: ``EQuery:Unknown asset pair``)."""


def dumps_exact(value: Any) -> bytes:
    """Serialise ``value`` to compact JSON, writing each :class:`Decimal` as its own token.

    ``json.dumps`` cannot emit a Decimal as a bare number; going through float
    would turn ``0.00`` into ``0.0`` and ``0.00005`` into ``5e-05``.
    """
    parts: list[str] = []
    _write(value, parts)
    return "".join(parts).encode()


def _write(value: Any, out: list[str]) -> None:
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} has no JSON representation")
        out.append(str(value))
    elif isinstance(value, Mapping):
        out.append("{")
        for i, (key, item) in enumerate(value.items()):
            if i:
                out.append(",")
            out.append(json.dumps(str(key)))
            out.append(":")
            _write(item, out)
        out.append("}")
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        out.append(json.dumps(value))


@dataclass
class AssetPairsCatalog:
    """The venue's tradable pairs: Kraken ``result`` entries keyed by pair key, numbers as Decimal."""

    pairs: dict[str, dict[str, Any]]
    #: pair keys the venue no longer lists (kept for a relisting): absent from AssetPairs, unknown by name
    delisted: set[str] = field(default_factory=set)
    _names: dict[str, str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        names: dict[str, str] = {}
        for key, entry in self.pairs.items():
            for name in (key, entry.get("altname"), entry.get("wsname")):
                if isinstance(name, str) and name:
                    names.setdefault(name.upper(), key)
        self._names = names

    @classmethod
    def from_document(cls, text: str | bytes, *, source: str = "<assetpairs>") -> AssetPairsCatalog:
        """Parse a Kraken AssetPairs response (``{"error": [], "result": {...}}``)."""
        try:
            doc = json.loads(text, parse_float=Decimal)
        except ValueError as exc:
            raise InvalidInput(f"{source}: not valid JSON: {exc}") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("result"), dict):
            raise InvalidInput(f"{source}: expected Kraken's {{'error': [], 'result': {{PAIR: {{...}}}}}} shape")
        if doc.get("error"):
            raise InvalidInput(f"{source}: the document carries errors: {doc['error']}")
        bad = [key for key, entry in doc["result"].items() if not isinstance(entry, dict)]
        if bad:
            raise InvalidInput(f"{source}: pair entries must be objects: {', '.join(bad)}")
        return cls(pairs=dict(doc["result"]))

    @classmethod
    def from_file(cls, path: str | Path) -> AssetPairsCatalog:
        """Load a fixture file in Kraken's AssetPairs response format."""
        path = Path(path)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read AssetPairs fixture {path}: {exc.strerror}") from exc
        return cls.from_document(text, source=str(path))

    def resolve(self, name: str) -> str:
        """The pair key for a pair key, altname or wsname (case-insensitive)."""
        key = self._names.get(name.strip().upper())
        if key is None or key in self.delisted:
            raise UnknownAssetPair(name)
        return key

    def select(self, pair: str | None = None, info: str = "info") -> dict[str, dict[str, Any]]:
        """The ``result`` object for a ``pair`` filter and an ``info`` level, as Kraken builds it.

        Raises :class:`UnknownAssetPair` for an unknown pair and ``ValueError`` for an unknown ``info``.
        """
        if info != "info" and info not in INFO_FIELDS:
            raise ValueError(info)
        keys: Iterable[str]
        if pair is None or not pair.strip():
            keys = [key for key in self.pairs if key not in self.delisted]
        else:
            keys = dict.fromkeys(self.resolve(name) for name in pair.split(","))
        result: dict[str, dict[str, Any]] = {}
        for key in keys:
            entry = self.pairs[key]
            if info == "info":
                result[key] = entry
            else:
                result[key] = {f: entry[f] for f in INFO_FIELDS[info] if f in entry}
        return result


def _kraken(result: Any = None, errors: list[str] | None = None) -> Response:
    body: dict[str, Any] = {"error": errors or []}
    if not errors:
        body["result"] = result
    return Response(content=dumps_exact(body), media_type="application/json")


def public_router(catalog: AssetPairsCatalog, *, system_status: Callable[[], str] = lambda: "online") -> APIRouter:
    """Routes for ``/0/public/AssetPairs``, ``/0/public/SystemStatus`` and ``/0/public/Time``.

    ``system_status`` is consulted on each SystemStatus request, so a simulator
    can put the venue into ``maintenance`` or ``cancel_only`` at run time.
    """
    router = APIRouter(prefix="/0/public", tags=["public market data"])

    @router.get("/AssetPairs", summary="Tradable asset pairs (Kraken format)")
    async def asset_pairs(
        pair: str | None = Query(None, max_length=4096, description="Comma-separated pair keys, altnames or wsnames"),
        info: str = Query("info", max_length=32, description="info | leverage | fees | margin"),
    ) -> Response:
        """Kraken's ``public/AssetPairs``; errors in Kraken's ``error`` array with HTTP 200."""
        try:
            return _kraken(catalog.select(pair, info))
        except UnknownAssetPair:
            return _kraken(errors=[UNKNOWN_PAIR])
        except ValueError:
            return _kraken(errors=[f"{INVALID_ARGUMENTS}:info"])

    @router.get("/SystemStatus", summary="Venue status (Kraken format)")
    async def status() -> Response:
        """``{"status": online|maintenance|cancel_only|post_only, "timestamp": RFC 3339}``."""
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
        return _kraken({"status": system_status(), "timestamp": stamp})

    @router.get("/Time", summary="Server time (Kraken format)")
    async def server_time() -> Response:
        """``{"unixtime": seconds, "rfc1123": "Mon, 06 Jul 26 18:50:48 +0000"}``."""
        now = time.time()
        rfc1123 = time.strftime("%a, %d %b %y %H:%M:%S +0000", time.gmtime(now))
        return _kraken({"unixtime": int(now), "rfc1123": rfc1123})

    return router


def create_public_app(assetpairs_path: str | Path, *, system_status: str = "online") -> FastAPI:
    """A FastAPI app serving the venue's public REST API from an AssetPairs fixture file.

    The fixture is read once here, so a broken file fails at start-up with
    :class:`~sandbox.errors.InvalidInput` rather than on the first request.
    """
    if system_status not in SYSTEM_STATES:
        raise InvalidInput(f"system status {system_status!r} is not one of {', '.join(SYSTEM_STATES)}")
    catalog = AssetPairsCatalog.from_file(assetpairs_path)
    app = FastAPI(title="Kraken venue simulator (public REST)", version="0.1.0")
    app.state.catalog = catalog
    app.state.system_status = system_status
    app.include_router(public_router(catalog, system_status=lambda: app.state.system_status))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, Any]:
        """Liveness and readiness: the catalogue is loaded."""
        return {"status": "ok", "pairs": len(catalog.pairs)}

    return app
