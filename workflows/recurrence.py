"""RFC 5545 recurrence (python-dateutil): the occurrences of a rule that fall in one year."""

from __future__ import annotations

from datetime import date, datetime

from dateutil.rrule import rrulestr


def occurrences_in_year(rule: str, year: int) -> list[date]:
    """Dates of ``rule`` within ``year``. Without its own DTSTART the rule starts on 01-01 of ``year``."""
    has_dtstart = "DTSTART" in rule.upper()
    start = datetime(year, 1, 1)
    parsed = rrulestr(rule, forceset=True, **({} if has_dtstart else {"dtstart": start}))
    end = datetime(year, 12, 31, 23, 59, 59)
    first = datetime(year, 1, 1)
    found = parsed.between(first, end, inc=True)
    return sorted({d.date() for d in found})
