"""Plan dates are month-day strings (``"05-10"``); a program instance gives them a year."""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

_MONTH_DAY = re.compile(r"^(\d{2})-(\d{2})$")


@dataclass(frozen=True, order=True)
class MonthDay:
    month: int
    day: int

    def in_year(self, year: int) -> date:
        """The date in ``year``; ``02-29`` is the last day of February in a common year."""
        last = calendar.monthrange(year, self.month)[1]
        return date(year, self.month, min(self.day, last))

    def __str__(self) -> str:
        return f"{self.month:02d}-{self.day:02d}"


def parse_month_day(text: str) -> MonthDay:
    """Parse ``"MM-DD"``; raise ValueError for a malformed or impossible date (``"02-30"``)."""
    found = _MONTH_DAY.match(text.strip())
    if not found:
        raise ValueError(f'bad date "{text}": expected "MM-DD", e.g. "05-10"')
    month, day = int(found.group(1)), int(found.group(2))
    if not 1 <= month <= 12:
        raise ValueError(f'bad date "{text}": there is no month {month}')
    if not 1 <= day <= calendar.monthrange(2024, month)[1]:
        raise ValueError(f'bad date "{text}": month {month} has no day {day}')
    return MonthDay(month, day)
