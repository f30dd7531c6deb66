"""Working-day calendars: which days are working days, and arithmetic over working days.

A day is a working day iff it is a listed make-up working day (调休上班), or it is Monday–Friday
and not a listed holiday. ``cn-workdays`` takes the lists from the PRC's official schedule
(``chinese_calendar``, 2004–2026), from an override file for the years an office adds or corrects,
and for any other year from the law itself: the statutory holidays of 《全国年节及纪念日放假办法》
(the lunar and solar-term dates computed by the ``holidays`` package), with no make-up working
days — which only the State Council's yearly notice fixes — and says so loudly, once per year.

The rule, the per-year tables and the arithmetic every calendar shares are in workdays.py, the
override file in overrides.py; their names are re-exported here. Nothing here reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import chinese_calendar
import holidays

from workflows.errors import CalendarError
from workflows.overrides import load_overrides
from workflows.workdays import (
    AssumedScheduleWarning,
    OnAssumed,
    WorkdayCalendar,
    YearSchedule,
)

__all__ = [
    "CALENDAR_NAMES",
    "LIBRARY_YEARS",
    "OVERRIDE_HOWTO",
    "OVERRIDE_LOADED",
    "STATUTORY_NAMES",
    "AssumedScheduleWarning",
    "CnWorkdays",
    "OnAssumed",
    "WeekdaysOnly",
    "WorkdayCalendar",
    "YearSchedule",
    "load_overrides",
    "make_calendar",
    "statutory_holidays",
]


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


OVERRIDE_HOWTO = (
    "日历覆盖文件（格式见 examples/calendar-overrides.example.toml），并在 config.toml 的 [definitions] 中"
    "以 calendar_overrides 指向它"
)
"""What to do about a year without official data, when no override file is configured."""
OVERRIDE_LOADED = "日历覆盖文件（config.toml 中 [definitions] calendar_overrides 所指的文件）"
"""What to do about it when an override file is configured but lacks the year."""


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

    @property
    def howto(self) -> str:
        """Where a year's schedule goes once published: the override file (and how to configure one)."""
        return OVERRIDE_LOADED if self._has_override_file else OVERRIDE_HOWTO

    def warning_for(self, year: int) -> str:
        """One line for the office (``duban status``, ``plan``, ``validate``, the daemon's log): the
        year has no official schedule, what is assumed, and what to do (``OVERRIDE_HOWTO``)."""
        known = f"chinese-calendar 只有 {LIBRARY_YEARS[0]}—{LIBRARY_YEARS[-1]} 年的数据"
        overrides = f"日历覆盖文件中也没有 {year} 年" if self._has_override_file else "也未加载日历覆盖文件"
        how = self.howto
        return (
            f"{year} 年尚无国务院公布的放假安排（{known}，{overrides}）：暂按《全国年节及纪念日放假办法》"
            f"只计法定节假日，{year} 年的调休上班日未知，国务院安排的调休放假也未计入；"
            f"国务院办公厅公布{year}年放假安排后，把 [{year}] 写入{how}"
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
