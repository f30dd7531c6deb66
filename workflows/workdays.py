"""What every working-day calendar is: the rule, the per-year tables and the arithmetic over them.

A day is a working day iff it is a listed make-up working day (调休上班), or it is Monday–Friday
and not a listed holiday; a ``YearSchedule`` lists one year's holidays and make-up working days.
Every calendar precomputes, lazily and once per year, a table of the year's working days, so a
lookup is a dict access plus an index, and ``add_workdays`` is a few list indexings.
Nothing here reads a clock. The calendars themselves (``cn-workdays``, ``weekdays``) are in
calendar.py, the override file in overrides.py.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, timedelta
from itertools import accumulate

OnAssumed = Callable[[int, str], None]
"""Called as ``on_assumed(year, message)`` the first time a year without official data is used."""


class AssumedScheduleWarning(UserWarning):
    """A year had no official schedule and no ``on_assumed`` callback was given: a fallback was assumed."""


@dataclass(frozen=True)
class YearSchedule:
    """One year's official schedule.

    ``holidays`` are non-working days, ``workdays`` are make-up working days (调休上班); every
    other day of ``year`` is a working day iff it is Monday–Friday.
    """

    year: int
    holidays: frozenset[date]
    workdays: frozenset[date]


@dataclass(frozen=True, slots=True)
class _YearTable:
    """A year's working days, precomputed for O(1) lookups.

    ``flags[k]`` is 1 iff the day ``first + k`` (an ordinal) is a working day; ``rank[k]`` is the
    number of working days among the year's first ``k`` days; ``ordinals`` are the ordinals of the
    year's working days, ascending (so ``ordinals[rank[k]]`` is the first working day at or after
    day ``k``).
    """

    first: int
    flags: bytes
    rank: tuple[int, ...]
    ordinals: tuple[int, ...]

    @classmethod
    def build(cls, schedule: YearSchedule) -> _YearTable:
        """The table for ``schedule.year`` under the rule in the module docstring."""
        start = date(schedule.year, 1, 1)
        days = (date(schedule.year, 12, 31) - start).days + 1
        flags = bytearray(days)
        for k in range(days):
            day = start + timedelta(days=k)
            flags[k] = day in schedule.workdays or (day.weekday() < 5 and day not in schedule.holidays)
        first = start.toordinal()
        ordinals = tuple(first + k for k in range(days) if flags[k])
        return cls(first, bytes(flags), tuple(accumulate(flags, initial=0)), ordinals)


class WorkdayCalendar:
    """A working-day calendar: the contract every calendar keeps.

    Subclasses provide ``name``, ``has_official_data`` and ``_schedule``; everything else is
    computed here from per-year tables. A year whose ``_schedule`` is ``None`` is assumed to have
    the ``_fallback`` schedule (here: Monday–Friday working days and no holidays); it is reported
    once through ``on_assumed`` (or, without one, as an ``AssumedScheduleWarning``) and listed by
    ``assumed_years()``.
    All methods are safe to call from several threads.
    """

    name: str = ""

    def __init__(self, on_assumed: OnAssumed | None = None) -> None:
        self._on_assumed = on_assumed
        self._tables: dict[int, _YearTable] = {}
        self._assumed: set[int] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}>"

    # -- what a subclass provides -------------------------------------------------------------

    def has_official_data(self, year: int) -> bool:
        """True iff the calendar knows ``year``'s schedule (no assumption is made for it)."""
        raise NotImplementedError

    def _schedule(self, year: int) -> YearSchedule | None:
        """``year``'s schedule, or ``None`` when there is no data for it."""
        raise NotImplementedError

    def _fallback(self, year: int) -> YearSchedule:
        """The schedule assumed for a year without data: Monday–Friday, no holidays."""
        return YearSchedule(year, frozenset(), frozenset())

    def warning_for(self, year: int) -> str:
        """The message reported when ``year`` has no data and the fallback is assumed."""
        return (
            f"{year}: no working-day schedule in calendar {self.name!r} — "
            "assuming Monday–Friday are working days and no holidays"
        )

    # -- queries ------------------------------------------------------------------------------

    def assumed_years(self) -> frozenset[int]:
        """The years looked up so far that had no data (Monday–Friday was assumed for them)."""
        with self._lock:
            return frozenset(self._assumed)

    def is_workday(self, d: date) -> bool:
        """True iff ``d`` is a working day."""
        table = self._table(d.year)
        return table.flags[d.toordinal() - table.first] == 1

    def next_workday(self, d: date) -> date:
        """``d`` if it is a working day, else the first working day after it ("roll forward")."""
        return d if self.is_workday(d) else self._nth_after(d, 1)

    def prev_workday(self, d: date) -> date:
        """``d`` if it is a working day, else the last working day before it ("roll back")."""
        return d if self.is_workday(d) else self._nth_before(d, 1)

    def add_workdays(self, d: date, n: int) -> date:
        """The ``n``-th working day strictly after ``d`` (``n > 0``) or strictly before it (``n < 0``).

        ``n == 0`` is ``next_workday(d)``. Cost grows with the number of years crossed, not with ``n``
        days. Raises ``OverflowError`` past ``date.min`` or ``date.max``.
        """
        if n > 0:
            return self._nth_after(d, n)
        if n < 0:
            return self._nth_before(d, -n)
        return self.next_workday(d)

    def workdays_between(self, a: date, b: date) -> int:
        """The number of working days in ``(a, b]``; ``-workdays_between(b, a)`` when ``b < a``."""
        if b < a:
            return -self.workdays_between(b, a)
        count = self._count_through(b) - self._count_through(a)
        for year in range(a.year, b.year):
            count += len(self._table(year).ordinals)
        return count

    # -- the tables ---------------------------------------------------------------------------

    def _count_through(self, d: date) -> int:
        """The number of working days from 1 January of ``d``'s year to ``d``, inclusive."""
        table = self._table(d.year)
        return table.rank[d.toordinal() - table.first + 1]

    def _nth_after(self, d: date, n: int) -> date:
        """The ``n``-th (``n >= 1``) working day strictly after ``d``."""
        year = d.year
        table = self._table(year)
        index = table.rank[d.toordinal() - table.first + 1] + n - 1
        while index >= len(table.ordinals):
            index -= len(table.ordinals)
            year += 1
            table = self._table(year)
        return date.fromordinal(table.ordinals[index])

    def _nth_before(self, d: date, n: int) -> date:
        """The ``n``-th (``n >= 1``) working day strictly before ``d``."""
        year = d.year
        table = self._table(year)
        index = table.rank[d.toordinal() - table.first] - n
        while index < 0:
            year -= 1
            table = self._table(year)
            index += len(table.ordinals)
        return date.fromordinal(table.ordinals[index])

    def _table(self, year: int) -> _YearTable:
        """``year``'s table, built on first use."""
        table = self._tables.get(year)
        return table if table is not None else self._build(year)

    def _build(self, year: int) -> _YearTable:
        """Build and cache ``year``'s table; report the year once if it had to be assumed."""
        if not MINYEAR <= year <= MAXYEAR:
            raise OverflowError(f"date value out of range (year {year})")
        with self._lock:
            table = self._tables.get(year)
            if table is not None:
                return table
            schedule = self._schedule(year)
            assumed = schedule is None
            if schedule is None:
                schedule = self._fallback(year)
                self._assumed.add(year)
            table = self._tables[year] = _YearTable.build(schedule)
        if assumed:
            self._report_assumed(year)
        return table

    def _report_assumed(self, year: int) -> None:
        """Tell the caller, once, that ``year`` is assumed (outside the lock: it may call back)."""
        message = self.warning_for(year)
        if self._on_assumed is not None:
            self._on_assumed(year, message)
        else:
            warnings.warn(message, AssumedScheduleWarning, stacklevel=5)
