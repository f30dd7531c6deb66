"""The PRC working-day calendar: official days, unknown years, the override file, properties."""

from __future__ import annotations

import textwrap
import threading
from datetime import date, timedelta
from pathlib import Path

import chinese_calendar
import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.calendar import (
    AssumedScheduleWarning,
    CnWorkdays,
    WeekdaysOnly,
    WorkdayCalendar,
    YearSchedule,
    load_overrides,
    make_calendar,
    statutory_holidays,
)
from workflows.errors import CalendarError, DefinitionError


def D(text: str) -> date:
    return date.fromisoformat(text)


class Recorder:
    """An ``on_assumed`` callback that remembers its calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def __call__(self, year: int, message: str) -> None:
        self.calls.append((year, message))


@pytest.fixture
def cal() -> CnWorkdays:
    return CnWorkdays(on_assumed=Recorder())


# One calendar for the property tests (building year tables once keeps them fast).
SHARED = CnWorkdays(on_assumed=lambda year, message: None)


# -- official days, 2024–2026 -------------------------------------------------------------------

IS_WORKDAY = [
    # 2025
    ("2025-01-01", False, "New Year's Day (Wed)"),
    ("2025-01-26", True, "Spring Festival make-up Sunday"),
    ("2025-01-28", False, "Spring Festival eve"),
    ("2025-02-04", False, "Spring Festival, last day (Tue)"),
    ("2025-02-05", True, "first day back after Spring Festival"),
    ("2025-02-08", True, "Spring Festival make-up Saturday"),
    ("2025-04-04", False, "Qingming (Fri)"),
    ("2025-04-07", True, "Monday after Qingming"),
    ("2025-04-27", True, "Labour Day make-up Sunday"),
    ("2025-05-01", False, "Labour Day"),
    ("2025-05-05", False, "Labour Day in lieu (Mon)"),
    ("2025-05-06", True, "back after Labour Day"),
    ("2025-05-31", False, "Dragon Boat (Sat)"),
    ("2025-06-02", False, "Dragon Boat in lieu (Mon)"),
    ("2025-09-28", True, "National Day make-up Sunday"),
    ("2025-10-01", False, "National Day"),
    ("2025-10-06", False, "Mid-Autumn 2025, inside National Day week"),
    ("2025-10-08", False, "National Day in lieu (Wed)"),
    ("2025-10-09", True, "back after National Day"),
    ("2025-10-11", True, "National Day make-up Saturday"),
    ("2025-10-12", False, "ordinary Sunday"),
    ("2025-12-31", True, "last day of 2025 (Wed)"),
    # 2026
    ("2026-01-01", False, "New Year's Day (Thu)"),
    ("2026-01-02", False, "New Year in lieu (Fri)"),
    ("2026-01-03", False, "New Year (Sat)"),
    ("2026-01-04", True, "New Year make-up Sunday"),
    ("2026-02-13", True, "Friday before Spring Festival"),
    ("2026-02-14", True, "Spring Festival make-up Saturday"),
    ("2026-02-15", False, "Spring Festival, first day (Sun)"),
    ("2026-02-16", False, "Spring Festival eve (Mon)"),
    ("2026-02-23", False, "Spring Festival, last day (Mon)"),
    ("2026-02-24", True, "back after Spring Festival"),
    ("2026-02-28", True, "Spring Festival make-up Saturday"),
    ("2026-03-07", False, "ordinary Saturday"),
    ("2026-03-08", False, "ordinary Sunday"),
    ("2026-03-09", True, "ordinary Monday"),
    ("2026-04-06", False, "Qingming in lieu (Mon)"),
    ("2026-04-07", True, "back after Qingming"),
    ("2026-05-01", False, "Labour Day (Fri)"),
    ("2026-05-05", False, "Labour Day in lieu (Tue)"),
    ("2026-05-06", True, "back after Labour Day"),
    ("2026-05-09", True, "Labour Day make-up Saturday"),
    ("2026-06-19", False, "Dragon Boat (Fri)"),
    ("2026-06-22", True, "back after Dragon Boat"),
    ("2026-09-20", True, "National Day make-up Sunday"),
    ("2026-09-25", False, "Mid-Autumn (Fri)"),
    ("2026-09-28", True, "back after Mid-Autumn"),
    ("2026-10-01", False, "National Day"),
    ("2026-10-07", False, "National Day, last day (Wed)"),
    ("2026-10-08", True, "back after National Day"),
    ("2026-10-10", True, "National Day make-up Saturday"),
    ("2026-10-11", False, "ordinary Sunday"),
    ("2026-12-31", True, "last day of 2026 (Thu)"),
    # leap year with official data
    ("2024-02-29", True, "leap day 2024 (Thu)"),
]


@pytest.mark.parametrize(("day", "working", "why"), IS_WORKDAY, ids=[row[2] for row in IS_WORKDAY])
def test_is_workday(cal: CnWorkdays, day: str, working: bool, why: str) -> None:
    assert cal.is_workday(D(day)) is working


NEXT_WORKDAY = [
    ("2025-12-31", "2025-12-31", "a working day is its own next working day"),
    ("2026-01-01", "2026-01-04", "New Year rolls forward to the make-up Sunday"),
    ("2025-10-01", "2025-10-09", "National Day 2025"),
    ("2026-10-01", "2026-10-08", "National Day 2026"),
    ("2026-02-15", "2026-02-24", "Spring Festival 2026"),
    ("2026-02-28", "2026-02-28", "a make-up Saturday is its own next working day"),
    ("2026-05-31", "2026-06-01", "month end on a Sunday"),
    ("2026-01-31", "2026-02-02", "month end on a Saturday"),
    ("2026-10-31", "2026-11-02", "month end on a Saturday, after National Day"),
    ("2024-02-29", "2024-02-29", "leap day"),
    ("2024-03-02", "2024-03-04", "weekend after a leap day"),
]


@pytest.mark.parametrize(("day", "expected", "why"), NEXT_WORKDAY, ids=[row[2] for row in NEXT_WORKDAY])
def test_next_workday(cal: CnWorkdays, day: str, expected: str, why: str) -> None:
    assert cal.next_workday(D(day)) == D(expected)


PREV_WORKDAY = [
    ("2026-10-07", "2026-09-30", "back across National Day"),
    ("2026-10-04", "2026-09-30", "from the middle of National Day"),
    ("2025-10-08", "2025-09-30", "back across National Day 2025"),
    ("2026-01-03", "2025-12-31", "back across New Year and the year boundary"),
    ("2026-02-23", "2026-02-14", "back across Spring Festival to the make-up Saturday"),
    ("2026-10-11", "2026-10-10", "an ordinary Sunday after a make-up Saturday"),
    ("2024-03-03", "2024-03-01", "weekend after a leap day"),
    ("2026-03-09", "2026-03-09", "a working day is its own previous working day"),
]


@pytest.mark.parametrize(("day", "expected", "why"), PREV_WORKDAY, ids=[row[2] for row in PREV_WORKDAY])
def test_prev_workday(cal: CnWorkdays, day: str, expected: str, why: str) -> None:
    assert cal.prev_workday(D(day)) == D(expected)


ADD_WORKDAYS = [
    ("2026-09-30", 1, "2026-10-08", "the design's example"),
    ("2026-09-30", 2, "2026-10-09", ""),
    ("2026-09-30", 3, "2026-10-10", "lands on the make-up Saturday"),
    ("2026-09-30", 4, "2026-10-12", ""),
    ("2025-12-31", 1, "2026-01-04", "across the year end to the make-up Sunday"),
    ("2025-12-31", 2, "2026-01-05", ""),
    ("2026-10-08", -1, "2026-09-30", "back across National Day"),
    ("2026-10-12", -3, "2026-10-08", "back across the make-up Saturday"),
    ("2026-01-04", -1, "2025-12-31", "back across the year end"),
    ("2026-10-01", 0, "2026-10-08", "0 is next_workday"),
    ("2026-10-08", 0, "2026-10-08", "0 on a working day is that day"),
    ("2026-10-01", 1, "2026-10-08", "from a holiday, forward"),
    ("2026-10-01", -1, "2026-09-30", "from a holiday, back"),
    ("2026-02-13", 1, "2026-02-14", ""),
    ("2026-02-13", 2, "2026-02-24", "across Spring Festival"),
    ("2026-01-30", 1, "2026-02-02", "across a month end"),
    ("2024-02-28", 1, "2024-02-29", "onto a leap day"),
    ("2024-02-29", 1, "2024-03-01", "off a leap day"),
]


@pytest.mark.parametrize(
    ("day", "n", "expected", "why"), ADD_WORKDAYS, ids=[f"{r[0]}{r[1]:+d}" for r in ADD_WORKDAYS]
)
def test_add_workdays(cal: CnWorkdays, day: str, n: int, expected: str, why: str) -> None:
    assert cal.add_workdays(D(day), n) == D(expected)


def _library_count(first: date, last: date) -> int:
    """Working days in [first, last] by chinese_calendar itself (the oracle)."""
    return sum(chinese_calendar.is_workday(first + timedelta(k)) for k in range((last - first).days + 1))


WORKDAYS_BETWEEN = [
    ("2026-09-30", "2026-10-08", 1, "National Day counts nothing"),
    ("2026-09-30", "2026-10-07", 0, ""),
    ("2026-10-08", "2026-09-30", -1, "reversed is negative"),
    ("2025-12-31", "2026-01-05", 2, "the make-up Sunday counts"),
    ("2026-02-13", "2026-02-28", 6, "both make-up Saturdays around Spring Festival"),
    ("2026-03-09", "2026-03-09", 0, "an empty interval"),
    ("2025-12-31", "2026-12-31", _library_count(D("2026-01-01"), D("2026-12-31")), "a whole year"),
    ("2024-06-30", "2026-06-30", _library_count(D("2024-07-01"), D("2026-06-30")), "two years"),
]


@pytest.mark.parametrize(
    ("a", "b", "count", "why"), WORKDAYS_BETWEEN, ids=[r[3] or r[0] for r in WORKDAYS_BETWEEN]
)
def test_workdays_between(cal: CnWorkdays, a: str, b: str, count: int, why: str) -> None:
    assert cal.workdays_between(D(a), D(b)) == count


def test_every_official_day_agrees_with_the_library(cal: CnWorkdays) -> None:
    day, last = date(2004, 1, 1), date(2026, 12, 31)
    while day <= last:
        assert cal.is_workday(day) == chinese_calendar.is_workday(day), day
        day += timedelta(days=1)
    assert cal.assumed_years() == frozenset()


def test_a_year_has_about_250_working_days(cal: CnWorkdays) -> None:
    for year in (2025, 2026):
        assert 245 <= cal.workdays_between(date(year - 1, 12, 31), date(year, 12, 31)) <= 252


# -- years without official data ----------------------------------------------------------------


def test_unknown_years_use_the_statutory_holidays_and_report_once_per_year() -> None:
    recorder = Recorder()
    cal = CnWorkdays(on_assumed=recorder)
    assert not cal.is_workday(D("2027-01-01"))  # 元旦, a Friday: a holiday by the law itself
    assert not cal.is_workday(D("2027-01-02"))
    assert cal.next_workday(D("2027-10-02")) == D("2027-10-04")  # 10-01..10-03 statutory
    assert not cal.is_workday(D("2030-10-01"))
    assert cal.is_workday(D("2030-10-04"))  # no bridging days: only what the law fixes
    assert not cal.is_workday(D("2030-10-05"))  # no make-up working day either (unknown)
    assert cal.add_workdays(D("2030-12-27"), 1) == D("2030-12-30")
    assert [year for year, _ in recorder.calls] == [2027, 2030]
    for year, message in recorder.calls:
        assert str(year) in message
        assert f"{year} 年的调休上班日未知" in message
        assert f"把 [{year}] 写入日历覆盖文件" in message
    assert cal.assumed_years() == {2027, 2030}


# 《全国年节及纪念日放假办法》 (2024): 元旦 1, 春节 4 from 除夕, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3.
# The weekdays of 2027 that the law makes holidays (the list), and the whole of 2030.
STATUTORY = [
    (2027, ["2027-01-01", "2027-02-05", "2027-02-06", "2027-02-07", "2027-02-08", "2027-04-05",
            "2027-05-01", "2027-05-02", "2027-06-09", "2027-09-15", "2027-10-01", "2027-10-02",
            "2027-10-03"]),
    (2030, ["2030-01-01", "2030-02-02", "2030-02-03", "2030-02-04", "2030-02-05", "2030-04-05",
            "2030-05-01", "2030-05-02", "2030-06-05", "2030-09-12", "2030-10-01", "2030-10-02",
            "2030-10-03"]),
]  # fmt: skip


@pytest.mark.parametrize(("year", "days"), STATUTORY, ids=[str(y) for y, _ in STATUTORY])
def test_the_statutory_holidays_of_a_year_without_data(year: int, days: list[str]) -> None:
    assert sorted(statutory_holidays(year)) == [D(d) for d in days]
    cal = CnWorkdays(on_assumed=lambda *_: None)
    assert [d for d in days if cal.is_workday(D(d))] == []
    weekdays = [D(d) for d in days if D(d).weekday() < 5]
    assert all(not cal.is_workday(d) for d in weekdays)


def test_the_statutory_rule_agrees_with_every_official_year_s_own_festivals() -> None:
    """In 2025–2026 (the 2024 revision) every statutory day is off in the official schedule too."""
    for year in (2025, 2026):
        for day in statutory_holidays(year):
            assert not chinese_calendar.is_workday(day), day
        assert len(statutory_holidays(year)) == 13


def test_an_override_file_still_wins_over_the_statutory_rule() -> None:
    schedule = YearSchedule(2027, frozenset({D("2027-02-09")}), frozenset({D("2027-02-20")}))
    recorder = Recorder()
    cal = CnWorkdays({2027: schedule}, on_assumed=recorder)
    assert cal.is_workday(D("2027-01-01"))  # the override does not list it: a working day
    assert not cal.is_workday(D("2027-02-09"))
    assert cal.is_workday(D("2027-02-20"))  # a Saturday, a make-up working day
    assert recorder.calls == []


def test_the_warning_text() -> None:
    assert CnWorkdays({}).warning_for(2027) == (
        "2027 年尚无国务院公布的放假安排（chinese-calendar 只有 2004—2026 年的数据，日历覆盖文件中也没有 2027 年）："
        "暂按《全国年节及纪念日放假办法》只计法定节假日，2027 年的调休上班日未知，国务院安排的调休放假也未计入；"
        "国务院办公厅公布2027年放假安排后，把 [2027] 写入日历覆盖文件（config.toml 中 [definitions] "
        "calendar_overrides 所指的文件）"
    )
    assert (
        CnWorkdays()
        .warning_for(2027)
        .endswith(
            "把 [2027] 写入日历覆盖文件（格式见 examples/calendar-overrides.example.toml），并在 config.toml 的 "
            "[definitions] 中以 calendar_overrides 指向它"
        )
    )


def test_a_leap_day_in_an_unknown_year(cal: CnWorkdays) -> None:
    assert cal.is_workday(D("2028-02-29"))  # Tuesday
    assert cal.add_workdays(D("2028-02-28"), 1) == D("2028-02-29")
    assert cal.assumed_years() == {2028}


def test_crossing_into_an_unknown_year_reports_it() -> None:
    recorder = Recorder()
    cal = CnWorkdays(on_assumed=recorder)
    assert cal.add_workdays(D("2026-12-31"), 1) == D("2027-01-04")  # 2027-01-01 is 元旦
    assert [year for year, _ in recorder.calls] == [2027]


def test_has_official_data_makes_no_assumption() -> None:
    recorder = Recorder()
    cal = CnWorkdays(on_assumed=recorder)
    assert cal.has_official_data(2026)
    assert cal.has_official_data(2004)
    assert not cal.has_official_data(2027)
    assert not cal.has_official_data(2003)
    assert recorder.calls == []
    assert cal.assumed_years() == frozenset()


def test_no_callback_means_a_warning_not_silence() -> None:
    cal = CnWorkdays()
    with pytest.warns(AssumedScheduleWarning, match=r"^2027 年尚无国务院公布的放假安排"):
        cal.is_workday(D("2027-03-01"))


def test_known_years_report_nothing(cal: CnWorkdays) -> None:
    cal.add_workdays(D("2025-01-01"), 400)
    assert cal.assumed_years() == frozenset()


def test_threads_report_a_year_once() -> None:
    recorder = Recorder()
    cal = CnWorkdays(on_assumed=recorder)
    barrier = threading.Barrier(8)

    def look() -> None:
        barrier.wait()
        cal.is_workday(D("2029-06-01"))

    threads = [threading.Thread(target=look) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [year for year, _ in recorder.calls] == [2029]


def test_weekdays_only() -> None:
    cal = WeekdaysOnly()
    assert cal.name == "weekdays"
    assert cal.is_workday(D("2026-10-01"))
    assert not cal.is_workday(D("2026-10-10"))
    assert cal.add_workdays(D("2026-09-30"), 1) == D("2026-10-01")
    assert cal.has_official_data(2099)
    assert cal.is_workday(D("2099-01-01")) and cal.assumed_years() == frozenset()


def test_make_calendar() -> None:
    schedule = YearSchedule(2027, frozenset({D("2027-01-01")}), frozenset())
    cn = make_calendar("cn-workdays", {2027: schedule})
    assert isinstance(cn, CnWorkdays) and cn.name == "cn-workdays"
    assert not cn.is_workday(D("2027-01-01"))
    assert isinstance(make_calendar("weekdays"), WeekdaysOnly)
    with pytest.raises(CalendarError, match=r'unknown calendar "cn".*"cn-workdays", "weekdays"'):
        make_calendar("cn")


def test_dates_out_of_range_overflow() -> None:
    cal = WeekdaysOnly()
    with pytest.raises(OverflowError):
        cal.add_workdays(date.max, 1)
    with pytest.raises(OverflowError):
        cal.add_workdays(date.min, -1)


# -- the override file ----------------------------------------------------------------------------


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "calendar.toml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


OVERRIDE_2027 = """
    # next year's schedule, published by the State Council each November
    [2027]
    holidays = ["2027-01-01", "2027-02-05..2027-02-13", "2027-10-01..2027-10-07"]   # dates or ranges
    workdays = ["2027-02-14"]                                                        # 调休上班
"""


def test_an_override_adds_a_year(tmp_path: Path) -> None:
    overrides = load_overrides(write(tmp_path, OVERRIDE_2027))
    assert set(overrides) == {2027}
    assert len(overrides[2027].holidays) == 1 + 9 + 7
    recorder = Recorder()
    cal = CnWorkdays(overrides, on_assumed=recorder)
    assert cal.has_official_data(2027)
    assert not cal.is_workday(D("2027-01-01"))
    assert not cal.is_workday(D("2027-02-08"))  # a Monday in the Spring Festival range
    assert cal.is_workday(D("2027-02-14"))  # a make-up Sunday
    assert cal.next_workday(D("2027-10-01")) == D("2027-10-08")
    assert cal.is_workday(D("2026-01-04"))  # the library still has 2026
    assert recorder.calls == [] and cal.assumed_years() == frozenset()


def test_an_override_beats_the_library(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [2026]
        holidays = ["2026-03-02"]
        workdays = []
        """,
    )
    cal = CnWorkdays(load_overrides(path))
    assert not cal.is_workday(D("2026-03-02"))
    assert cal.is_workday(D("2026-10-01"))  # the override replaces the whole year
    assert not cal.is_workday(D("2026-01-04"))


def test_override_accepts_multiline_arrays_toml_dates_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "calendar.toml"
    text = '[2027]\r\nholidays = [\r\n  2027-01-01,\r\n  "2027-05-01 .. 2027-05-05",\r\n]\r\n'
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    overrides = load_overrides(path)
    assert overrides[2027].holidays == {D("2027-01-01")} | {D(f"2027-05-0{k}") for k in range(1, 6)}
    assert overrides[2027].workdays == frozenset()


def test_an_empty_override_file(tmp_path: Path) -> None:
    assert load_overrides(write(tmp_path, "# nothing yet\n")) == {}


def test_a_missing_override_file(tmp_path: Path) -> None:
    with pytest.raises(CalendarError, match=r"nowhere\.toml: no such file$"):
        load_overrides(tmp_path / "nowhere.toml")


BROKEN = [
    (
        "a section that is not a year",
        """
        [next]
        holidays = ["2027-01-01"]
        """,
        [(1, "section [next] is not a year")],
    ),
    (
        "an unknown key",
        """
        [2027]
        holidays = ["2027-01-01"]
        holiday = ["2027-01-02"]
        """,
        [(3, "[2027] unknown key \"holiday\" = ['2027-01-02']")],
    ),
    (
        "a bad date",
        """
        [2027]
        holidays = ["2027-01-01",
                    "2027-02-30"]
        """,
        [(3, '[2027] holidays: "2027-02-30" is not a date (day is out of range for month)')],
    ),
    (
        "not a date at all",
        """
        [2027]
        workdays = ["14 Feb"]
        """,
        [(2, '[2027] workdays: "14 Feb" is not a date: expected "YYYY-MM-DD"')],
    ),
    (
        "a bad end of a range",
        """
        [2027]
        holidays = ["2027-02-05..2027-02-31"]
        """,
        [(2, '"2027-02-05..2027-02-31" is not a date (day is out of range for month)')],
    ),
    (
        "a date outside the section's year",
        """
        [2027]
        holidays = ["2027-01-01"]
        workdays = ["2026-12-27"]
        """,
        [(3, '[2027] workdays: "2026-12-27" is not in 2027')],
    ),
    (
        "a range that leaves the year",
        """
        [2027]
        holidays = ["2027-12-31..2028-01-02"]
        """,
        [(2, '"2027-12-31..2028-01-02" is not in 2027')],
    ),
    (
        "a range backwards",
        """
        [2027]

        holidays = ["2027-01-01", "2027-02-13..2027-02-05"]
        """,
        [(3, '[2027] holidays: range "2027-02-13..2027-02-05" ends before it starts')],
    ),
    (
        "a date both holiday and workday",
        """
        [2027]
        holidays = ["2027-02-05..2027-02-13"]
        workdays = [
            "2027-02-14",
            "2027-02-13",
        ]
        """,
        [(5, '[2027] 2027-02-13 is both a holiday ("2027-02-05..2027-02-13") and a workday ("2027-02-13")')],
    ),
    (
        "not a list",
        """
        [2027]
        holidays = "2027-01-01"
        """,
        [(2, "[2027] holidays = '2027-01-01': expected a list of dates")],
    ),
    (
        "a section that is not a table",
        """
        2027 = ["2027-01-01"]
        """,
        [(1, "[2027] must be a table")],
    ),
    (
        "a TOML syntax error",
        """
        [2027]
        holidays = ["2027-01-01",
        workdays = ["2027-02-14"]
        """,
        [(3, "not valid TOML: Invalid value (column 1)")],
    ),
    (
        "a section declared twice",
        """
        [2027]
        holidays = ["2027-01-01"]

        [2027]
        """,
        [(4, "not valid TOML: Cannot declare ('2027',) twice")],
    ),
    (
        "the same bad value in two sections",
        """
        [2026]
        holidays = ["2025-01-01"]
        [2027]
        holidays = ["2025-01-01"]
        """,
        [(2, '"2025-01-01" is not in 2026'), (4, '"2025-01-01" is not in 2027')],
    ),
    (
        "several problems at once",
        """
        # comment
        [2027]
        holidays = ["2027-01-01", "2027-02-30", "2027-10-07..2027-10-01", "2027-05-01"]
        workdays = ["2027-05-01"]
        typo = 1

        [twenty-eight]
        holidays = []
        """,
        [
            (3, '"2027-02-30" is not a date'),
            (3, 'range "2027-10-07..2027-10-01" ends before it starts'),
            (4, "2027-05-01 is both a holiday"),
            (5, 'unknown key "typo" = 1'),
            (7, "section [twenty-eight] is not a year"),
        ],
    ),
]


@pytest.mark.parametrize(("why", "text", "expected"), BROKEN, ids=[row[0] for row in BROKEN])
def test_broken_override_files(tmp_path: Path, why: str, text: str, expected: list[tuple[int, str]]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DefinitionError) as caught:
        load_overrides(path)
    problems = caught.value.problems
    assert [p.line for p in problems] == [line for line, _ in expected], problems
    for problem, (_, fragment) in zip(problems, expected, strict=True):
        assert problem.file == str(path)
        assert fragment in problem.message, problem


# -- properties -----------------------------------------------------------------------------------

days = st.dates(min_value=date(2004, 1, 1), max_value=date(2031, 12, 31))
counts = st.integers(min_value=1, max_value=600)


def _workdays_in(cal: WorkdayCalendar, first: date, last: date) -> list[date]:
    """The working days in [first, last], one by one (the slow oracle)."""
    span = (last - first).days + 1
    return [first + timedelta(k) for k in range(span) if cal.is_workday(first + timedelta(k))]


@given(days)
def test_next_workday_is_the_first_working_day_at_or_after(d: date) -> None:
    result = SHARED.next_workday(d)
    assert result >= d and SHARED.is_workday(result)
    assert _workdays_in(SHARED, d, result - timedelta(days=1)) == []


@given(days)
def test_prev_workday_is_the_last_working_day_at_or_before(d: date) -> None:
    result = SHARED.prev_workday(d)
    assert result <= d and SHARED.is_workday(result)
    assert _workdays_in(SHARED, result + timedelta(days=1), d) == []


@given(days, counts)
def test_add_workdays_forward(d: date, n: int) -> None:
    result = SHARED.add_workdays(d, n)
    assert result > d and SHARED.is_workday(result)
    assert SHARED.workdays_between(d, result) == n
    assert SHARED.workdays_between(d, result - timedelta(days=1)) == n - 1


@given(days, st.integers(min_value=1, max_value=40))
def test_add_workdays_matches_counting_day_by_day(d: date, n: int) -> None:
    ahead = _workdays_in(SHARED, d + timedelta(days=1), d + timedelta(days=3 * n + 30))
    behind = _workdays_in(SHARED, d - timedelta(days=3 * n + 30), d - timedelta(days=1))
    assert SHARED.add_workdays(d, n) == ahead[n - 1]
    assert SHARED.add_workdays(d, -n) == behind[-n]


@given(days, counts)
def test_add_workdays_back_and_forth(d: date, n: int) -> None:
    assert SHARED.add_workdays(SHARED.add_workdays(d, n), -n) == SHARED.prev_workday(d)
    assert SHARED.add_workdays(SHARED.add_workdays(d, -n), n) == SHARED.next_workday(d)
    if SHARED.is_workday(d):
        assert SHARED.add_workdays(SHARED.add_workdays(d, n), -n) == d


@given(days, days, days)
def test_workdays_between_is_additive_and_antisymmetric(a: date, b: date, c: date) -> None:
    assert SHARED.workdays_between(a, b) == -SHARED.workdays_between(b, a)
    assert SHARED.workdays_between(a, b) + SHARED.workdays_between(b, c) == SHARED.workdays_between(a, c)
