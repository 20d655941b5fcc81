"""Five-field cron expressions (minute hour day-of-month month day-of-week), evaluated in UTC.

Supports ``*``, numbers, ranges ``a-b``, lists ``a,b`` and steps ``*/n`` and
``a-b/n``; day-of-week 0-7 with 0 and 7 both Sunday.  As in cron, when both
day fields are restricted a day matches either of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day of month", 1, 31), ("month", 1, 12), ("day of week", 0, 7))
#: A search bound: any valid expression fires within 5 years (29 February is the rarest case).
_HORIZON = timedelta(days=366 * 5)


class CronError(ValueError):
    """An expression that is not valid five-field cron."""


def _field(text: str, name: str, lo: int, hi: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{name}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = lo, hi
        elif "-" in base:
            a, _, b = base.partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise CronError(f"{name}: bad range {base!r}")
            start, end = int(a), int(b)
        elif base.isdigit():
            start = int(base)
            end = hi if step_text else start
        else:
            raise CronError(f"{name}: {part!r} is not a number, range or *")
        if not (lo <= start <= hi and lo <= end <= hi) or start > end:
            raise CronError(f"{name}: {part!r} outside {lo}-{hi}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed expression; :meth:`next_after` gives its next firing time."""

    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday."""
    days_any: bool
    weekdays_any: bool

    @classmethod
    def parse(cls, expression: str) -> Cron:
        """Parse ``expression``; :class:`CronError` when it is not five valid fields."""
        parts = expression.split()
        if len(parts) != 5:
            raise CronError(f"{expression!r}: expected 5 fields (minute hour day month weekday), got {len(parts)}")
        sets = [_field(p, *spec) for p, spec in zip(parts, _FIELDS, strict=True)]
        weekdays = frozenset(d % 7 for d in sets[4])
        return cls(sets[0], sets[1], sets[2], sets[3], weekdays, parts[2] == "*", parts[4] == "*")

    def _day_matches(self, t: datetime) -> bool:
        dom = t.day in self.days
        dow = (t.isoweekday() % 7) in self.weekdays
        if self.days_any or self.weekdays_any:
            return dom and dow
        return dom or dow

    def matches(self, t: datetime) -> bool:
        """Whether the expression fires in the minute of ``t``."""
        return t.minute in self.minutes and t.hour in self.hours and t.month in self.months and self._day_matches(t)

    def next_after(self, t: datetime) -> datetime:
        """The first firing time strictly after ``t`` (UTC, whole minutes)."""
        t = (t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)).replace(second=0, microsecond=0) + timedelta(minutes=1)
        limit = t + _HORIZON
        while t < limit:
            if t.month not in self.months:
                t = (t.replace(day=1, hour=0, minute=0) + timedelta(days=32)).replace(day=1)
                continue
            if not self._day_matches(t):
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
                continue
            if t.hour not in self.hours:
                t = t.replace(minute=0) + timedelta(hours=1)
                continue
            if t.minute not in self.minutes:
                t += timedelta(minutes=1)
                continue
            return t
        raise CronError("the expression never fires (no such day)")
