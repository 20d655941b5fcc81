"""The in-memory copy of every dataset the checks read (no database round trip per check).

Each dataset is replaced as a whole by its reloader; positions and marks are
merged row by row and never go backwards (positions carry a version, marks a
timestamp), so a slow reload cannot undo a newer update.
"""

from __future__ import annotations

from collections.abc import Iterable

from sandbox.services.risk.assets import canonical_asset
from sandbox.services.risk.domain import EsgExclusion, KillSwitch, LimitSet, RestrictedEntry, RestrictedIndex
from sandbox.services.risk.positions import Mark, Position


class RiskState:
    """Current datasets; satisfies :class:`sandbox.services.risk.rules.RiskView`."""

    def __init__(self) -> None:
        """Empty datasets (filled by the start-up load)."""
        self.restricted = RestrictedIndex.build(())
        self.esg: dict[str, EsgExclusion] = {}
        self.esg_entries: dict[str, EsgExclusion] = {}
        self.limits = LimitSet()
        self.kill_switches: dict[str, KillSwitch] = {}
        self.positions: dict[str, dict[str, Position]] = {}
        self.marks: dict[str, Mark] = {}

    def set_restricted(self, entries: Iterable[RestrictedEntry]) -> None:
        """Replace the restricted list."""
        self.restricted = RestrictedIndex.build(entries)

    def set_esg(self, exclusions: Iterable[EsgExclusion]) -> None:
        """Replace the ESG exclusions (indexed by canonical asset; the stored spelling is kept for listing)."""
        entries = {e.asset: e for e in exclusions}
        index: dict[str, EsgExclusion] = {}
        for asset in sorted(entries):
            index.setdefault(canonical_asset(asset), entries[asset])
        self.esg_entries, self.esg = entries, index

    def set_limits(self, limits: LimitSet) -> None:
        """Replace every limit."""
        self.limits = limits

    def set_kill_switches(self, switches: Iterable[KillSwitch]) -> None:
        """Replace every kill-switch state."""
        self.kill_switches = {s.account: s for s in switches}

    def merge_positions(self, positions: Iterable[Position]) -> int:
        """Take each position unless memory already holds a newer version; returns how many changed."""
        changed = 0
        for pos in positions:
            book = self.positions.setdefault(pos.account, {})
            held = book.get(pos.symbol)
            if held is None or pos.version > held.version:
                book[pos.symbol] = pos
                changed += 1
        return changed

    def merge_marks(self, marks: Iterable[Mark]) -> int:
        """Take each mark unless memory already holds a later one; returns how many changed."""
        changed = 0
        for mark in marks:
            held = self.marks.get(mark.symbol)
            if held is None or mark.at >= held.at:
                self.marks[mark.symbol] = mark
                changed += 1
        return changed
