"""Offsets: parsing, canonical text, and shifting dates by days, working days and months."""

from __future__ import annotations

from calendar import monthrange
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workflows.calendar import CnWorkdays, WeekdaysOnly
from workflows.offsets import UNITS, Offset, parse_offset, shift

CN = CnWorkdays(on_assumed=lambda year, message: None)


def D(text: str) -> date:
    return date.fromisoformat(text)


PARSE = [
    ("-7d", Offset(-7, "d"), "-7d"),
    ("7d", Offset(7, "d"), "7d"),
    ("+7d", Offset(7, "d"), "7d"),
    ("-3wd", Offset(-3, "wd"), "-3wd"),
    ("+3wd", Offset(3, "wd"), "3wd"),
    ("1wd", Offset(1, "wd"), "1wd"),
    ("-6mo", Offset(-6, "mo"), "-6mo"),
    ("  -30d\t", Offset(-30, "d"), "-30d"),
    ("0wd", Offset(0, "wd"), "0wd"),
    ("-0d", Offset(0, "d"), "0d"),
    ("007d", Offset(7, "d"), "7d"),
]


@pytest.mark.parametrize(("text", "offset", "canonical"), PARSE)
def test_parse_offset(text: str, offset: Offset, canonical: str) -> None:
    assert parse_offset(text) == offset
    assert str(offset) == canonical


BAD = [
    "7x",
    "",
    "d",
    "-d",
    "7",
    "- 7d",
    "7 d",
    "7D",
    "1.5d",
    "--7d",
    "+-7d",
    "7dd",
    "7wdd",
    "6m",
    "١d",
    "7d 3d",
]


@pytest.mark.parametrize("text", BAD)
def test_bad_offsets(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_offset(text)
    assert str(caught.value) == (
        f'bad offset "{text}": expected a signed number and a unit d (days), wd (working days) '
        'or mo (months), e.g. "-7d", "-3wd", "-6mo"'
    )


def test_offset_checks_its_fields() -> None:
    with pytest.raises(ValueError, match="unit"):
        Offset(1, "w")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="amount"):
        Offset(True, "d")


SHIFT = [
    ("2026-10-08", "-7d", "2026-10-01", "calendar days ignore holidays"),
    ("2025-12-31", "+1d", "2026-01-01", "across the year end"),
    ("2024-02-28", "1d", "2024-02-29", "onto a leap day"),
    ("2026-09-30", "+1wd", "2026-10-08", "across National Day"),
    ("2026-10-08", "-1wd", "2026-09-30", "back across National Day"),
    ("2026-10-12", "-3wd", "2026-10-08", "back across the make-up Saturday"),
    ("2026-10-01", "0wd", "2026-10-08", "0wd rolls forward"),
    ("2026-03-09", "0wd", "2026-03-09", "0wd on a working day"),
    ("2026-08-31", "-6mo", "2026-02-28", "month end clamps"),
    ("2024-08-31", "-6mo", "2024-02-29", "month end clamps to a leap day"),
    ("2026-03-31", "+1mo", "2026-04-30", ""),
    ("2026-01-31", "1mo", "2026-02-28", ""),
    ("2028-03-31", "-1mo", "2028-02-29", ""),
    ("2026-05-10", "-12mo", "2025-05-10", "a year back"),
    ("2026-12-15", "+1mo", "2027-01-15", "across the year end"),
]


@pytest.mark.parametrize(("day", "offset", "expected", "why"), SHIFT, ids=[f"{r[0]}{r[1]}" for r in SHIFT])
def test_shift(day: str, offset: str, expected: str, why: str) -> None:
    assert shift(D(day), parse_offset(offset), CN) == D(expected)


def test_shift_uses_the_calendar_it_is_given() -> None:
    assert shift(D("2026-09-30"), parse_offset("1wd"), WeekdaysOnly()) == D("2026-10-01")


# -- properties -----------------------------------------------------------------------------------

days = st.dates(min_value=date(1900, 1, 1), max_value=date(2100, 12, 31))
offsets = st.builds(Offset, st.integers(min_value=-10_000, max_value=10_000), st.sampled_from(UNITS))


@given(offsets)
def test_canonical_text_parses_back(offset: Offset) -> None:
    assert parse_offset(str(offset)) == offset


@given(days, st.integers(min_value=0, max_value=20_000))
def test_days_there_and_back(d: date, k: int) -> None:
    assert shift(shift(d, Offset(k, "d"), CN), Offset(-k, "d"), CN) == d


@given(days, st.integers(min_value=-1_200, max_value=1_200))
def test_months_clamp_and_never_raise(d: date, k: int) -> None:
    result = shift(d, Offset(k, "mo"), CN)
    assert (result.year * 12 + result.month) - (d.year * 12 + d.month) == k
    assert result.day == d.day or result.day == monthrange(result.year, result.month)[1] < d.day
    if d.day <= 28:
        assert result.day == d.day
