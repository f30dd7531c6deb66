"""Working-day calendars: which days are working days, and arithmetic over working days.

A day is a working day iff it is a listed make-up working day (调休上班), or it is Monday–Friday
and not a listed holiday. ``cn-workdays`` takes the lists from the PRC's official schedule
(``chinese_calendar``, 2004–2026), from an override file for the years an office adds or corrects,
and for any other year from the law itself: the statutory holidays of 《全国年节及纪念日放假办法》
(the lunar and solar-term dates computed by the ``holidays`` package), with no make-up working
days — which only the State Council's yearly notice fixes — and says so loudly, once per year.

Every calendar precomputes, lazily and once per year, a table of the year's working days, so a
lookup is a dict access plus an index, and ``add_workdays`` is a few list indexings.
Nothing here reads a clock.
"""

from __future__ import annotations

import re
import threading
import tomllib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, date, datetime, timedelta
from itertools import accumulate
from pathlib import Path
from typing import Any

import chinese_calendar
import holidays

from workflows.errors import CalendarError, DefinitionError, Problem
from workflows.source import SourceMap, syntax_error_line, syntax_error_text

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


# -- the PRC calendar -------------------------------------------------------------------------


def _library_schedules() -> dict[int, YearSchedule]:
    """chinese_calendar's data as one ``YearSchedule`` per year it covers (even a year with no entries)."""
    first, last = min(chinese_calendar.holidays).year, max(chinese_calendar.holidays).year
    return {
        year: YearSchedule(
            year,
            frozenset(d for d in chinese_calendar.holidays if d.year == year),
            frozenset(d for d in chinese_calendar.workdays if d.year == year),
        )
        for year in range(first, last + 1)
    }


_LIBRARY = _library_schedules()
LIBRARY_YEARS = range(min(_LIBRARY), max(_LIBRARY) + 1)
"""The years chinese_calendar has official data for (2004–2026 in 1.11.0)."""


STATUTORY_NAMES = frozenset({"元旦", "农历除夕", "春节", "清明节", "劳动节", "端午节", "中秋节", "国庆节"})
"""The ``holidays`` package's zh_CN names of the days 《全国年节及纪念日放假办法》 itself makes
holidays for everyone (元旦 1 day, 春节 4 from 除夕, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3 since the
2024 revision). Its other entries — the State Council's bridging days (休息日（由 … 调休）) and, with
``observed``, its guessed 补假 — are not the law's and are left out."""


def statutory_holidays(year: int) -> frozenset[date]:
    """The statutory holidays of ``year`` by the law alone: no bridging days, no make-up days.

    The lunar dates (除夕, 春节, 端午, 中秋) and the solar term 清明 come from the ``holidays``
    package (its Chinese lunisolar calendar and its encoding of the law's revisions).
    """
    found = holidays.country_holidays("CN", years=year, observed=False, language="zh_CN")
    return frozenset(
        day for day in found if day.year == year and STATUTORY_NAMES.intersection(found.get_list(day))
    )


class CnWorkdays(WorkdayCalendar):
    """The PRC's working days: statutory holidays and make-up working days (调休).

    For a year in ``overrides`` the override replaces the library's data; otherwise the library's
    official data is used; otherwise the statutory holidays alone (``statutory_holidays``, no
    make-up working days) are assumed and reported (see ``warning_for``).
    """

    name = "cn-workdays"

    def __init__(
        self,
        overrides: Mapping[int, YearSchedule] | None = None,
        on_assumed: OnAssumed | None = None,
    ) -> None:
        super().__init__(on_assumed)
        self._has_override_file = overrides is not None
        self._overrides = dict(overrides or {})

    def has_official_data(self, year: int) -> bool:
        """True iff the override file or chinese_calendar has ``year``."""
        return year in self._overrides or year in _LIBRARY

    def _schedule(self, year: int) -> YearSchedule | None:
        if year in self._overrides:
            return self._overrides[year]
        return _LIBRARY.get(year)

    def _fallback(self, year: int) -> YearSchedule:
        """The law's statutory holidays of ``year``, and no make-up working days (unknown)."""
        return YearSchedule(year, statutory_holidays(year), frozenset())

    def warning_for(self, year: int) -> str:
        """E.g. ``"2027: no official PRC working-day schedule (…) — using …; MAKE-UP DAYS UNKNOWN …"``."""
        known = f"chinese-calendar knows {LIBRARY_YEARS[0]}–{LIBRARY_YEARS[-1]}"
        if self._has_override_file:
            overrides, where = f"the override file has no {year}", "the calendar override file"
        else:
            overrides, where = "no calendar override file is loaded", "a calendar override file"
        return (
            f"{year}: no official PRC working-day schedule ({known} and {overrides}) — "
            "using the statutory holidays of 《全国年节及纪念日放假办法》 only; "
            f"the make-up working days (调休) of {year} are UNKNOWN and the State Council's bridging "
            f"days are missing: add [{year}] to {where} once its schedule is published"
        )


class WeekdaysOnly(WorkdayCalendar):
    """Monday–Friday are working days, every year, with no holidays."""

    name = "weekdays"

    def __init__(self) -> None:
        super().__init__(on_assumed=None)

    def has_official_data(self, year: int) -> bool:
        """Always True: the rule is the data."""
        return True

    def _schedule(self, year: int) -> YearSchedule | None:
        return YearSchedule(year, frozenset(), frozenset())


CALENDAR_NAMES = ("cn-workdays", "weekdays")


def make_calendar(
    name: str,
    overrides: Mapping[int, YearSchedule] | None = None,
    on_assumed: OnAssumed | None = None,
) -> WorkdayCalendar:
    """The calendar called ``name`` (one of ``CALENDAR_NAMES``); ``CalendarError`` for any other name.

    ``overrides`` and ``on_assumed`` apply to ``cn-workdays``; ``weekdays`` needs neither.
    """
    if name == CnWorkdays.name:
        return CnWorkdays(overrides, on_assumed)
    if name == WeekdaysOnly.name:
        return WeekdaysOnly()
    known = ", ".join(f'"{n}"' for n in CALENDAR_NAMES)
    raise CalendarError(f'unknown calendar "{name}": known calendars are {known}')


# -- the override file ------------------------------------------------------------------------

_FIELDS = ("holidays", "workdays")
_YEAR = re.compile(r"[1-9]\d{3}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class _Source:
    """An override file's name and source map, to give each problem the line of its key or entry."""

    file: str
    lines: SourceMap

    def problem(self, loc: tuple[str | int, ...], message: str) -> Problem:
        """A problem at the line of ``loc`` (a key path; its longest written prefix, else line 1)."""
        return Problem(self.file, self.lines.line_of(loc), message)


def load_overrides(path: Path) -> dict[int, YearSchedule]:
    """Read a calendar override file: ``[YEAR]`` sections, each with ``holidays`` and ``workdays``.

    Entries are ``"YYYY-MM-DD"``, inclusive ranges ``"YYYY-MM-DD..YYYY-MM-DD"`` or TOML dates, inside
    the section's year; ``workdays`` are make-up working days. Raises ``CalendarError`` if the file
    cannot be read, ``DefinitionError`` with every problem found (each at its line) if it is not a
    valid override file.
    """
    text = _read(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError([_syntax_problem(str(path), text, exc)]) from None
    source = _Source(str(path), SourceMap(text))
    schedules: dict[int, YearSchedule] = {}
    problems: list[Problem] = []
    for key, value in data.items():
        schedule, found = _parse_section(source, key, value)
        problems += found
        if schedule is not None:
            schedules[schedule.year] = schedule
    if problems:
        raise DefinitionError(problems)
    return schedules


def _read(path: Path) -> str:
    """The file's text (UTF-8, a byte-order mark allowed); ``CalendarError`` if it cannot be read."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise CalendarError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise CalendarError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise CalendarError(f"{path}: cannot read: {exc.strerror}") from None


def _syntax_problem(file: str, text: str, exc: tomllib.TOMLDecodeError) -> Problem:
    """A TOML syntax error, at the line tomllib names (the last line for "at end of document")."""
    message = str(exc)
    line = syntax_error_line(message) or max(len(text.split("\n")), 1)
    return Problem(file, line, f"not valid TOML: {syntax_error_text(message)}")


def _parse_section(source: _Source, key: str, value: Any) -> tuple[YearSchedule | None, list[Problem]]:
    """One ``[YEAR]`` section as a ``YearSchedule``, or ``None`` and the problems found in it."""
    if not _YEAR.fullmatch(key):
        return None, [
            source.problem((key,), f"section [{key}] is not a year: sections are years, e.g. [2027]")
        ]
    year = int(key)
    if not isinstance(value, dict):
        message = f'[{year}] must be a table with "holidays" and "workdays", not {value!r}'
        return None, [source.problem((key,), message)]
    problems = [
        source.problem(
            (key, name),
            f'[{year}] unknown key "{name}" = {extra!r}: expected "holidays" and "workdays"',
        )
        for name, extra in value.items()
        if name not in _FIELDS
    ]
    holidays, found = _parse_dates(source, key, year, "holidays", value.get("holidays", []))
    problems += found
    workdays, found = _parse_dates(source, key, year, "workdays", value.get("workdays", []))
    problems += found
    problems += _conflicts(source, key, year, holidays, workdays)
    if problems:
        return None, problems
    return YearSchedule(year, frozenset(holidays), frozenset(workdays)), []


def _parse_dates(
    source: _Source, section: str, year: int, field: str, value: Any
) -> tuple[dict[date, tuple[int, Any]], list[Problem]]:
    """A ``holidays``/``workdays`` list as ``{day: (index, the entry that lists it)}``, and its problems."""
    if not isinstance(value, list):
        example = f'["{year}-01-01", "{year}-02-05..{year}-02-13"]'
        message = f"[{year}] {field} = {value!r}: expected a list of dates, e.g. {example}"
        return {}, [source.problem((section, field), message)]
    days: dict[date, tuple[int, Any]] = {}
    problems: list[Problem] = []
    for index, entry in enumerate(value):
        try:
            days.update(dict.fromkeys(_expand(entry, year), (index, entry)))
        except ValueError as exc:
            problems.append(source.problem((section, field, index), f"[{year}] {field}: {exc}"))
    return days, problems


def _expand(entry: Any, year: int) -> list[date]:
    """The days an entry names; ``ValueError`` naming the entry if it is not a date or range in ``year``.

    An entry is a string, ``"YYYY-MM-DD"`` or an inclusive range ``"YYYY-MM-DD..YYYY-MM-DD"``, or a
    TOML local date (``2027-01-01`` unquoted).
    """
    expected = 'expected "YYYY-MM-DD" or "YYYY-MM-DD..YYYY-MM-DD"'
    if isinstance(entry, date) and not isinstance(entry, datetime):
        start = end = entry
    elif isinstance(entry, str) and len(parts := [part.strip() for part in entry.split("..")]) <= 2:
        start = _parse_date(entry, parts[0], expected)
        end = _parse_date(entry, parts[-1], expected)
    else:
        raise ValueError(f"{_show(entry)} is not a date: {expected}")
    if start.year != year or end.year != year:
        raise ValueError(f"{_show(entry)} is not in {year}")
    if end < start:
        raise ValueError(f'range "{entry}" ends before it starts')
    return [start + timedelta(days=k) for k in range((end - start).days + 1)]


def _show(entry: Any) -> str:
    """An entry as written in the file: a string in double quotes, a TOML date or number bare."""
    return f'"{entry}"' if isinstance(entry, str) else str(entry)


def _parse_date(entry: str, text: str, expected: str) -> date:
    """``text`` (part of ``entry``) as a date; ``ValueError`` naming the entry if it is not one."""
    if not _ISO_DATE.fullmatch(text):
        raise ValueError(f'"{entry}" is not a date: {expected}')
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise ValueError(f'"{entry}" is not a date ({exc})') from None


def _conflicts(
    source: _Source,
    section: str,
    year: int,
    holidays: dict[date, tuple[int, Any]],
    workdays: dict[date, tuple[int, Any]],
) -> list[Problem]:
    """A problem, at the ``workdays`` entry, for each day listed both as a holiday and as a workday."""
    problems = []
    for day in sorted(holidays.keys() & workdays.keys()):
        (_, holiday), (index, workday) = holidays[day], workdays[day]
        message = f"[{year}] {day} is both a holiday ({_show(holiday)}) and a workday ({_show(workday)})"
        problems.append(source.problem((section, "workdays", index), message))
    return problems
