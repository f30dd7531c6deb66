"""The dates people type into a spreadsheet's 完成日期 column, read as a day or refused in Chinese.

Accepted, year first (as a Chinese office writes a date): ``2026-06-05``, ``2026-6-5``,
``2026/6/5``, ``2026.6.5``, ``2026年6月5日`` (or ``…5号``), with full-width digits too, and
with a time after it (``2026/6/5 0:00``, what a date-time cell becomes in a CSV): the day is what
counts. A date cell of an XLSX file reaches here as ``2026-06-05`` already (``xlsx_rows`` reads a
date-formatted number, or a date-time, as its day); a number in a cell that is *not* formatted as a
date is refused, never taken for an Excel serial day.

Refused, with the real problem (``BadDay``, its message without the column):

- a day the calendar does not have: 「2026/6/31」不是有效日期：6月没有31日; 2月29日 in a common year;
  month 13;
- a date whose order cannot be known: ``6/5/2026`` (6月5日 or 5月6日?), a two-digit year ``26/6/5``;
- a date without its year (``6月5日``), a bare number (``46178``), anything else.
"""

from __future__ import annotations

import calendar
import re
import unicodedata
from datetime import date

from workflows.errors import DubanError

MAX_CHARS = 64
EXAMPLES = "如 2026-06-05、2026/6/5 或 2026年6月5日"
_TIME = r"(?:[ T]+\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
_WITH_TIME = re.compile(rf"(?P<day>.+?){_TIME}")
_NUMBERS = re.compile(r"(\d+)([-/.])(\d+)\2(\d+)")
_CHINESE = re.compile(r"(?:(\d+)年)?(\d+)月(\d+)[日号]?")
_NO_YEAR = re.compile(r"(\d{1,2})[-/.](\d{1,2})")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


class BadDay(DubanError):
    """A text that is no day, and why (in Chinese, without the column: the import adds it)."""


def parse_day(text: str, today: date) -> date:
    """The day ``text`` names; ``BadDay`` saying what is wrong. ``today`` only words the examples."""
    normal = unicodedata.normalize("NFKC", text).strip()
    shown = text.strip()[:40]
    if len(normal) > MAX_CHARS:  # (no date is that long; and the patterns stay linear)
        raise BadDay(f"「{shown}…」不是日期：请填写日期，{EXAMPLES}")
    found = _WITH_TIME.fullmatch(normal)
    day_text = re.sub(r"\s+", "", found.group("day") if found else normal)
    numbers = _NUMBERS.fullmatch(day_text)
    if numbers:
        first, _, second, third = numbers.groups()
        if len(first) == 4:
            return _day(shown, int(first), int(second), int(third))
        if len(third) == 4:
            raise BadDay(_year_last(shown, int(first), int(second), int(third)))
        raise BadDay(f"「{shown}」的年份不是四位数：请写全年份，{EXAMPLES}")
    chinese = _CHINESE.fullmatch(day_text)
    if chinese:
        year, month, day = chinese.groups()
        if year is None:
            raise BadDay(f"「{shown}」没有年份：请写明哪一年，如 {today.year}年{month}月{day}日")
        if len(year) != 4:
            raise BadDay(f"「{shown}」的年份不是四位数：请写全年份，{EXAMPLES}")
        return _day(shown, int(year), int(month), int(day))
    if _NO_YEAR.fullmatch(day_text):
        raise BadDay(f"「{shown}」没有年份：请写明哪一年，{EXAMPLES}")
    if _NUMBER.fullmatch(day_text):
        raise BadDay(f"「{shown}」是一个数字，不是日期（单元格未设为日期格式）：请填写日期，{EXAMPLES}")
    raise BadDay(f"「{shown}」不是日期：请填写日期，{EXAMPLES}")


def _day(shown: str, year: int, month: int, day: int) -> date:
    if not 1 <= year <= 9999:
        raise BadDay(f"「{shown}」不是有效日期：没有{year}年")
    if not 1 <= month <= 12:
        raise BadDay(f"「{shown}」不是有效日期：没有{month}月")
    last = calendar.monthrange(year, month)[1]
    if not 1 <= day <= last:
        if month == 2 and day == 29:
            raise BadDay(f"「{shown}」不是有效日期：{year}年不是闰年，2月没有29日")
        raise BadDay(f"「{shown}」不是有效日期：{month}月没有{day}日")
    return date(year, month, day)


def _year_last(shown: str, first: int, second: int, year: int) -> str:
    """``6/5/2026``: month first (American) or day first (European) — a spreadsheet in either
    locale writes it, and nothing in the text says which."""
    if first <= 12 and second <= 12 and first != second:
        return (
            f"「{shown}」无法确定是{first}月{second}日还是{second}月{first}日：请按“年/月/日”的顺序填写，"
            f"如 {year}/{first}/{second}"
        )
    if first > 12 and second > 12:
        return f"「{shown}」不是有效日期：请按“年/月/日”的顺序填写，{EXAMPLES}"
    month, day = (second, first) if first > 12 else (first, second)
    return f"「{shown}」的年份在最后：请按“年/月/日”的顺序填写，如 {year}/{month}/{day}"
