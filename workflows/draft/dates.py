"""The date phrases of Chinese government plans, read into duban's date rules.

Each finding keeps the exact phrase it was read from (``When.phrase``: a substring of the line) so
that the draft can cite it. What the text does not fix is not filled in: 「每年」 with no day gives a
rule whose day is 「待定」 (which ``duban validate`` refuses) and says so in ``unsure``.

Families, with an example each:

- a day: 「6月10日」, 「2022年10月10日」, 「年5月10日」 (a template's year left blank);
- a deadline: 「6月10日前」「……之前」「……以前」; a month's end 「10月底前」「2022年10月底」「年底前」;
  part of a month 「7月中旬」 (上旬 → 10th, 中旬 → 20th, 下旬 → the month's end: marked unsure);
- a span: 「5月10日至5月30日」「年5月10日—年5月30日」「4月—7月中旬」 (a month alone: its first day as
  a start, its last as an end);
- a recurrence: 「每年12月底前」「每年3月1日前」「每季度」「每季度末」「每月5日前」「每半年」「每年」
  「每两年」「每隔两年」;
- an expiry: 「有效期届满前6个月」 (opens that long before a register row's date, rolls back).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass

from workflows.monthday import MonthDay

TBD = "待定"  # a placeholder duban validate refuses: the text does not say
_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")
_CN = {"一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9, "十": 10}
NUM = r"(?:\d{1,2}|[一二三四五六七八九十]{1,3})"
YEAR = r"(?:(?P<{n}>\d{{4}})\s*年|(?<![\d一二三四五六七八九十])年)?"
PARTS = {"上旬": 10, "中旬": 20, "下旬": 31, "初": 10, "底": 31, "末": 31}
_MONTH_PART = r"(?P<{n}part>上旬|中旬|下旬|初|底|末)?"
DASH = r"\s*(?:至|到|—+|－|–|-|~|～)\s*"
DEADLINE = r"(?:之前|以前|前|止|为止)"


def number(text: str) -> int:
    """「10」「十」「十二」「二十一」 → the number."""
    text = text.translate(_DIGITS)
    if text.isdigit():
        return int(text)
    if text.startswith("十"):
        return 10 + (_CN[text[1]] if len(text) > 1 else 0)
    if len(text) >= 2 and text[1] == "十":
        return _CN[text[0]] * 10 + (_CN[text[2]] if len(text) > 2 else 0)
    return _CN[text]


def _point(name: str, day: bool) -> str:
    year = YEAR.format(n=f"{name}y")
    if day:
        return rf"{year}\s*(?P<{name}m>{NUM})\s*月\s*(?P<{name}d>{NUM})\s*[日号]"
    return rf"{year}\s*(?P<{name}m>{NUM})\s*月(?:份)?{_MONTH_PART.format(n=name)}"


def _either(name: str) -> str:
    return rf"(?:{_point(name + 'x', True)}|{_point(name + 'o', False)})"


SPAN = re.compile(rf"{_either('a')}{DASH}{_either('b')}")
POINT = re.compile(rf"{_either('p')}(?P<deadline>{DEADLINE})?")
YEAR_END = re.compile(
    rf"(?:(?P<y>\d{{4}})\s*年|(?<![\w])年)(?:底|末)(?P<deadline>{DEADLINE})?|(?<![上下])年底前?"
)
HALF = re.compile(r"(?P<half>上半年|下半年)(?P<deadline>(?:底)?" + DEADLINE + "|内)?")
EVERY = re.compile(
    r"(?P<every>每年度?|每季度?|每个季度|每月|每个月|每半年|每(?:隔)?(?:两|二|三|2|3)年(?:一次)?|(?:两|二|2)年一次)"
    r"(?P<rest>[^，,。；;]{0,16})"
)
EXPIRY = re.compile(rf"(?P<what>有效期)?届满前\s*(?P<n>{NUM})\s*(?P<unit>个月|个工作日|日|天)")


@dataclass(frozen=True)
class When:
    """A date rule read from a phrase: ``kind`` is due | span | rrule | expiry."""

    kind: str
    phrase: str
    start: int  # where the phrase is in the line
    due: MonthDay | None = None
    begin: MonthDay | None = None  # a span's first day
    rrule: str | None = None
    window: str | None = None
    roll: str | None = None  # "backward" for a deadline before a date (a month's end, an expiry)
    year: int | None = None
    unsure: str | None = None
    placeholder: bool = False  # the rule holds 待定 (validate refuses it until a person fills it in)


def _day_of(match: re.Match, name: str, end: bool) -> tuple[MonthDay | None, int | None, str | None]:
    """The month-day of the point ``name`` in ``match``: (day, year, unsure)."""
    for variant in ("x", "o"):
        group = f"{name}{variant}m"
        if match.groupdict().get(group) is None:
            continue
        month = number(match.group(group))
        year_text = match.group(f"{name}{variant}y")
        year = int(year_text) if year_text else None
        if not 1 <= month <= 12:
            return None, year, None
        last = calendar.monthrange(2024, month)[1]
        if variant == "x":
            day = number(match.group(f"{name}xd"))
            return (MonthDay(month, day) if 1 <= day <= last else None), year, None
        part = match.group(f"{name}opart")
        if part in ("底", "末"):
            return MonthDay(month, last), year, None
        if part is None:
            return MonthDay(month, last if end else 1), year, None
        day = min(PARTS[part], last)
        return MonthDay(month, day), year, f"「{match.group(0).strip()}」读作{month}月{day}日"
    return None, None, None


def _spans(text: str, taken: list[tuple[int, int]]) -> list[When]:
    found = []
    for match in SPAN.finditer(text):
        begin, year, unsure_a = _day_of(match, "a", end=False)
        end, _, unsure_b = _day_of(match, "b", end=True)
        if begin is None or end is None:
            continue
        unsure = "；".join(u for u in (unsure_a, unsure_b) if u) or None
        if end < begin:
            unsure = ((unsure + "；") if unsure else "") + "结束日在开始日之前（跨年？）"
        taken.append(match.span())
        phrase = match.group(0).strip()
        found.append(When("span", phrase, match.start(), due=end, begin=begin, year=year, unsure=unsure))
    return found


def _free(span: tuple[int, int], taken: list[tuple[int, int]]) -> bool:
    return all(span[1] <= a or span[0] >= b for a, b in taken)


def _expiries(text: str, taken: list[tuple[int, int]]) -> list[When]:
    found = []
    for match in EXPIRY.finditer(text):
        amount = number(match.group("n"))
        unit = {"个月": "mo", "个工作日": "wd"}.get(match.group("unit"), "d")
        taken.append(match.span())
        found.append(
            When(
                "expiry",
                match.group(0),
                match.start(),
                window=f"-{amount}{unit}",
                roll="backward",
                unsure='到期日来自登记表：请写出登记表名和日期列（anchor = "register:NAME.COLUMN"）',
                placeholder=True,
            )
        )
    return found


def _recurrence(every: str, rest: str) -> tuple[str, str | None, bool, str | None, int]:
    """(rrule, unsure, placeholder, roll, characters of ``rest`` read) for 「每…」 and what follows."""
    point = POINT.search(rest)
    near = point if point and point.start() <= 6 else None  # 「每年12月底前」, not a date further on
    day = _day_of(near, "p", end=True)[0] if near else None
    used = near.end() if near else 0
    month_end = bool(near and near.group("popart") in ("底", "末"))
    if every.startswith("每年"):
        year_end = re.match(rf"\s*(?:年底|年末|底|末){DEADLINE}?", rest)
        if year_end:
            return "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=-1", None, False, "backward", year_end.end()
        if day is None:
            return (
                f"FREQ=YEARLY;BYMONTH={TBD};BYMONTHDAY={TBD}",
                "原文只说「每年」，没有日期：请写出月、日",
                True,
                None,
                0,
            )
        monthday = -1 if month_end else day.day
        rule = f"FREQ=YEARLY;BYMONTH={day.month};BYMONTHDAY={monthday}"
        return rule, None, False, "backward" if month_end else None, used
    if every.startswith(("每季", "每个季")):
        last = re.match(rf"\s*(?:度)?(?:末|最后一个?月底?){DEADLINE}?", rest)
        if last:
            return "FREQ=MONTHLY;BYMONTH=3,6,9,12;BYMONTHDAY=-1", None, False, "backward", last.end()
        first = re.match(
            rf"\s*(?:度)?(?:首月|第一个月|结束后)\s*(?P<d>{NUM})\s*(?:日|天|个工作日)(?:内|前)?", rest
        )
        if first:
            rule = f"FREQ=MONTHLY;BYMONTH=1,4,7,10;BYMONTHDAY={number(first.group('d'))}"
            return rule, "季度首月的第几日：请核对", False, None, first.end()
        return (
            f"FREQ=MONTHLY;BYMONTH={TBD};BYMONTHDAY={TBD}",
            "原文只说「每季度」：请写出哪几个月的哪一天",
            True,
            None,
            0,
        )
    if every.startswith(("每月", "每个月")):
        last = re.match(rf"\s*(?:底|末){DEADLINE}?", rest)
        if last:
            return "FREQ=MONTHLY;BYMONTHDAY=-1", None, False, "backward", last.end()
        found = re.match(rf"\s*(?P<d>{NUM})\s*[日号]{DEADLINE}?", rest)
        if found:
            return f"FREQ=MONTHLY;BYMONTHDAY={number(found.group('d'))}", None, False, None, found.end()
        return f"FREQ=MONTHLY;BYMONTHDAY={TBD}", "原文只说「每月」：请写出每月的哪一天", True, None, 0
    if every.startswith("每半年"):
        return (
            f"FREQ=MONTHLY;BYMONTH={TBD};BYMONTHDAY={TBD}",
            "原文只说「每半年」：请写出哪两个月的哪一天",
            True,
            None,
            0,
        )
    years = 3 if re.search(r"三|3", every) else 2
    tail = f";BYMONTH={day.month};BYMONTHDAY={-1 if month_end else day.day}" if day else ""
    unsure = f"原文为「{every}」：请写出第一次的日期（DTSTART:YYYYMMDD）" + ("" if day else "及月、日")
    return f"DTSTART:{TBD}\nRRULE:FREQ=YEARLY;INTERVAL={years}{tail}", unsure, True, None, used


def _recurrences(text: str, taken: list[tuple[int, int]]) -> list[When]:
    found = []
    for match in EVERY.finditer(text):
        if not _free(match.span("every"), taken):
            continue
        rule, unsure, placeholder, roll, used = _recurrence(match.group("every"), match.group("rest"))
        end = match.start("rest") + used
        taken.append((match.start(), end))
        phrase = text[match.start() : end]
        found.append(
            When(
                "rrule", phrase, match.start(), rrule=rule, roll=roll, unsure=unsure, placeholder=placeholder
            )
        )
    return found


def _points(text: str, taken: list[tuple[int, int]]) -> list[When]:
    found = []
    for match in POINT.finditer(text):
        if not _free(match.span(), taken):
            continue
        day, year, unsure = _day_of(match, "p", end=True)
        if day is None:
            continue
        part = match.groupdict().get("popart")
        roll = "backward" if part in ("底", "末") and match.group("deadline") else None
        month_only = match.groupdict().get("pxm") is None
        if month_only and part is None:
            if not match.group("deadline"):
                continue  # 「3月份」 alone says no day
            unsure = f"「{match.group(0).strip()}」读作{day.month}月{day.day}日（月底）"
        taken.append(match.span())
        found.append(
            When("due", match.group(0).strip(), match.start(), due=day, roll=roll, year=year, unsure=unsure)
        )
    for match in YEAR_END.finditer(text):
        if _free(match.span(), taken):
            taken.append(match.span())
            year = int(match.group("y")) if match.groupdict().get("y") else None
            found.append(
                When("due", match.group(0), match.start(), due=MonthDay(12, 31), roll="backward", year=year)
            )
    for match in HALF.finditer(text):
        if _free(match.span(), taken) and match.group("deadline"):
            taken.append(match.span())
            day = MonthDay(6, 30) if match.group("half") == "上半年" else MonthDay(12, 31)
            found.append(
                When(
                    "due",
                    match.group(0),
                    match.start(),
                    due=day,
                    roll="backward",
                    unsure=f"「{match.group(0)}」读作{day.month}月{day.day}日",
                )
            )
    return found


def find_dates(text: str) -> list[When]:
    """Every date phrase of ``text``, in the order they appear; overlapping readings are read once
    (an expiry before a span, a span before a recurrence, a recurrence before a lone day)."""
    normal = text.translate(_DIGITS)  # same length: positions are the line's own
    taken: list[tuple[int, int]] = []
    found = (
        _expiries(normal, taken)
        + _spans(normal, taken)
        + _recurrences(normal, taken)
        + _points(normal, taken)
    )
    return sorted(
        (When(**{**w.__dict__, "phrase": text[w.start : w.start + len(w.phrase)]}) for w in found),
        key=lambda w: w.start,
    )


def window_between(begin: MonthDay, end: MonthDay) -> str:
    """The window of a span as an offset from its end: 「5月10日至5月30日」 → ``"-20d"``."""
    year = 2023  # a common year: a span written without a year is read within one
    return f"-{(end.in_year(year) - begin.in_year(year)).days}d"


__all__ = ["TBD", "When", "find_dates", "number", "window_between"]
