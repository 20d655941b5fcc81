"""An account's policy rules, compiled once per change for cheap checks.

``allowed_symbols`` entries are matched by every spelling: each entry is
expanded with :func:`~sandbox.services.policy.instruments.name_candidates`
(``BTC-USD`` also matches ``XBT/USD``) and compared with the instrument's
symbol, altname and pair key. ``max_order_notional`` is keyed by quote asset in
either spelling (``USD`` or ``ZUSD``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sandbox.services.policy.instruments import Instrument, name_candidates
from sandbox.services.policy.numbers import plain


@dataclass(frozen=True)
class AccountRules:
    """The rules of one account, as stored, plus the compiled name set."""

    account: str
    allowed_symbols: tuple[str, ...] | None
    max_order_notional: Mapping[str, Decimal] | None
    version: int
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str = ""
    _names: frozenset[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def build(
        cls,
        account: str,
        allowed_symbols: Sequence[str] | None,
        max_order_notional: Mapping[str, Decimal] | None,
        version: int,
        **meta: Any,
    ) -> AccountRules:
        """Rules with the symbol spellings expanded once."""
        names = None
        if allowed_symbols is not None:
            names = frozenset(c for s in allowed_symbols for c in name_candidates(s))
        limits = None if max_order_notional is None else {k.upper(): v for k, v in max_order_notional.items()}
        return cls(
            account=account,
            allowed_symbols=None if allowed_symbols is None else tuple(allowed_symbols),
            max_order_notional=limits,
            version=version,
            _names=names,
            **meta,
        )

    def allows(self, instrument: Instrument | None, requested: str) -> bool:
        """Whether the account may trade the instrument (or, when unknown, the requested name)."""
        if self._names is None:
            return True
        if instrument is not None:
            return not self._names.isdisjoint(instrument.names)
        return not self._names.isdisjoint(name_candidates(requested))

    def notional_limit(self, instrument: Instrument) -> tuple[str, Decimal] | None:
        """``(currency key, maximum)`` for orders quoted like ``instrument``, else None (not limited)."""
        if not self.max_order_notional:
            return None
        for key in (instrument.quote.upper(), instrument.venue_quote.upper()):
            limit = self.max_order_notional.get(key)
            if limit is not None:
                return key, limit
        return None

    def document(self) -> dict[str, Any]:
        """The JSON document of these rules (decimals as strings), as stored in the audit trail."""
        return {
            "allowed_symbols": None if self.allowed_symbols is None else list(self.allowed_symbols),
            "max_order_notional": None
            if self.max_order_notional is None
            else {k: plain(v) for k, v in sorted(self.max_order_notional.items())},
        }

    def public(self) -> dict[str, Any]:
        """The ``RulesPublic`` document."""
        return {
            "account": self.account,
            **self.document(),
            "version": self.version,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "updated_by": self.updated_by,
        }
