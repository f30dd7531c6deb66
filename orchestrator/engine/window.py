"""Local days, midnights and the send window (default 09:00–17:30 local, working days only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from workflows.calendar import WorkdayCalendar


@dataclass(frozen=True)
class SendPolicy:
    """Where items go into send windows: the working-day calendar of each program and the window."""

    window: tuple[time, time]
    calendars: dict[str, WorkdayCalendar]
    default: WorkdayCalendar

    def calendar(self, workflow: str) -> WorkdayCalendar:
        return self.calendars.get(workflow, self.default)


@lru_cache(maxsize=4096)
def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """00:00 of ``day`` in ``tz``, as an aware UTC datetime (a program asks for a few hundred days,
    a million times)."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def local_day(at: datetime, tz: ZoneInfo) -> date:
    return at.astimezone(tz).date()


def send_slot(at: datetime, tz: ZoneInfo, window: tuple[time, time], cal: WorkdayCalendar) -> datetime:
    """The first moment at or after ``at`` inside a send window on a working day (UTC)."""
    start, end = window
    local = at.astimezone(tz)
    day = local.date()
    if cal.is_workday(day) and local.time() < end:
        return max(local, datetime.combine(day, start, tz)).astimezone(UTC)
    day = cal.next_workday(day + timedelta(days=1))
    return datetime.combine(day, start, tz).astimezone(UTC)


def in_send_window(at: datetime, tz: ZoneInfo, window: tuple[time, time], cal: WorkdayCalendar) -> bool:
    """True iff ``at`` is inside a send window on a working day (local time in ``tz``)."""
    return send_slot(at, tz, window, cal) <= at
