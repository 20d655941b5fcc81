"""Kraken's private-API error strings, and the exception that carries them to the response.

Kraken answers every API error with HTTP 200 and ``{"error": ["<E|W><Category>:<message>[:<detail>]"]}``;
the strings below are the ones documented in Kraken's "Spot Error Messages"
guide (or observed from the live API) for the calls this venue implements.
Where Kraken documents no exact text, the constant says so.
"""

from __future__ import annotations

# -- authentication and rate limits -----------------------------------------------------------
INVALID_KEY = "EAPI:Invalid key"
INVALID_SIGNATURE = "EAPI:Invalid signature"
INVALID_NONCE = "EAPI:Invalid nonce"
RATE_LIMIT = "EAPI:Rate limit exceeded"
PERMISSION_DENIED = "EGeneral:Permission denied"

# -- requests ---------------------------------------------------------------------------------
INVALID_ARGUMENTS = "EGeneral:Invalid arguments"
UNKNOWN_METHOD = "EGeneral:Unknown method"
INTERNAL_ERROR = "EGeneral:Internal error"
UNKNOWN_PAIR = "EQuery:Unknown asset pair"

# -- service status ---------------------------------------------------------------------------
UNAVAILABLE = "EService:Unavailable"
BUSY = "EService:Busy"
CANCEL_ONLY = "EService:Market in cancel_only mode"
POST_ONLY = "EService:Market in post_only mode"
#: not in Kraken's list (its pairs can be ``limit_only``); written the way the other two are
LIMIT_ONLY = "EService:Market in limit_only mode"
DEADLINE_ELAPSED = "EService:Deadline elapsed"

# -- orders -----------------------------------------------------------------------------------
INSUFFICIENT_FUNDS = "EOrder:Insufficient funds"
ORDER_MINIMUM = "EOrder:Order minimum not met"
COST_MINIMUM = "EOrder:Cost minimum not met"
ORDERS_LIMIT = "EOrder:Orders limit exceeded"
ORDER_RATE_LIMIT = "EOrder:Rate limit exceeded"
UNKNOWN_ORDER = "EOrder:Unknown order"
INVALID_ORDER = "EOrder:Invalid order"
INVALID_PRICE = "EOrder:Invalid price"
#: Kraken enforces cl_ord_id uniqueness across open orders; its exact error text is not documented
DUPLICATE_ORDER = "EOrder:Duplicate order"

# -- WebSocket private channels ---------------------------------------------------------------
INVALID_SESSION = "ESession:Invalid session"

#: Every error string above, for tests and the admin fault validator.
KNOWN = frozenset(v for k, v in dict(globals()).items() if k.isupper() and isinstance(v, str))


class KrakenError(Exception):
    """A request that fails with Kraken error strings (sent as ``{"error": [...]}`` with HTTP 200)."""

    def __init__(self, *errors: str) -> None:
        super().__init__(", ".join(errors))
        self.errors = list(errors)


def invalid(field: str | None = None) -> KrakenError:
    """``EGeneral:Invalid arguments`` (``:field`` appended, as Kraken does for a named field)."""
    return KrakenError(f"{INVALID_ARGUMENTS}:{field}" if field else INVALID_ARGUMENTS)
