"""Reference data the checks run against: immutable records and the indexes built from them.

Each dataset is loaded from its database as a whole and swapped in atomically
(:class:`RiskData`), so a check always sees one consistent version of each.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sandbox.services.risk.assets import canonical_asset, canonical_symbol


@dataclass(frozen=True)
class RestrictedEntry:
    """One restricted-list entry: a symbol or a base asset, for one account or everyone."""

    id: int
    kind: str  # "symbol" | "asset"
    value: str
    account: str | None
    reason: str
    created_at: datetime | None = None
    created_by: str = ""
    updated_at: datetime | None = None
    updated_by: str = ""

    @property
    def match_key(self) -> str:
        """The canonical value the entry matches on."""
        return canonical_symbol(self.value) if self.kind == "symbol" else canonical_asset(self.value)


@dataclass(frozen=True)
class RestrictedIndex:
    """Restricted entries keyed by ``(account or None, kind, canonical value)``."""

    entries: tuple[RestrictedEntry, ...] = ()
    _index: dict[tuple[str | None, str, str], RestrictedEntry] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, entries: Iterable[RestrictedEntry]) -> RestrictedIndex:
        """Index ``entries`` (the first entry wins when aliases collide)."""
        items = tuple(entries)
        index: dict[tuple[str | None, str, str], RestrictedEntry] = {}
        for entry in items:
            index.setdefault((entry.account, entry.kind, entry.match_key), entry)
        return cls(items, index)

    def matches(self, account: str, kind: str, key: str) -> list[RestrictedEntry]:
        """Entries restricting ``key`` (canonical) for ``account``: the global one first, then the account's."""
        found = []
        for scope in (None, account):
            entry = self._index.get((scope, kind, key))
            if entry is not None:
                found.append(entry)
        return found


@dataclass(frozen=True)
class EsgExclusion:
    """An asset excluded on ESG grounds, with the reason and an optional score."""

    asset: str
    reason: str
    score: Decimal | None = None
    updated_at: datetime | None = None
    updated_by: str = ""


@dataclass(frozen=True)
class AccountLimits:
    """Account-level limits (quote-currency amounts; None = no limit)."""

    gross_exposure: Decimal | None = None
    daily_loss: Decimal | None = None
    concentration_pct: Decimal | None = None
    concentration_floor: Decimal | None = None
    updated_at: datetime | None = None
    updated_by: str = ""

    def over(self, defaults: AccountLimits | None) -> AccountLimits:
        """These limits with every unset field taken from ``defaults``."""
        if defaults is None:
            return self
        return AccountLimits(
            gross_exposure=self.gross_exposure if self.gross_exposure is not None else defaults.gross_exposure,
            daily_loss=self.daily_loss if self.daily_loss is not None else defaults.daily_loss,
            concentration_pct=self.concentration_pct if self.concentration_pct is not None else defaults.concentration_pct,
            concentration_floor=(
                self.concentration_floor if self.concentration_floor is not None else defaults.concentration_floor
            ),
            updated_at=self.updated_at,
            updated_by=self.updated_by,
        )


#: The account key under which default account limits are stored.
DEFAULT_ACCOUNT = "*"


@dataclass(frozen=True)
class PositionLimit:
    """Maximum absolute position of an account in a symbol (base units)."""

    account: str
    symbol: str
    max_position: Decimal
    updated_at: datetime | None = None
    updated_by: str = ""


@dataclass(frozen=True)
class LimitSet:
    """All limits: account limits (with defaults under ``*``) and per-symbol position limits."""

    accounts: dict[str, AccountLimits] = field(default_factory=dict)
    positions: dict[tuple[str, str], PositionLimit] = field(default_factory=dict)

    def effective(self, account: str) -> AccountLimits:
        """The account's limits with defaults filled in."""
        defaults = self.accounts.get(DEFAULT_ACCOUNT)
        own = self.accounts.get(account)
        if own is None:
            return defaults or AccountLimits()
        return own.over(defaults)

    def position_limit(self, account: str, symbol: str) -> PositionLimit | None:
        """The position limit of ``account`` in ``symbol``, if any."""
        return self.positions.get((account, symbol))


@dataclass(frozen=True)
class KillSwitch:
    """The kill-switch state of one account."""

    account: str
    active: bool
    reason: str
    at: datetime
    set_by: str

    def message(self, *, rebroadcast: bool = False) -> dict[str, object]:
        """The NATS broadcast document."""
        return {
            "account": self.account,
            "active": self.active,
            "reason": self.reason,
            "at": self.at.isoformat(),
            "set_by": self.set_by,
            "rebroadcast": rebroadcast,
        }
