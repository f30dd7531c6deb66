"""The clock is injected: the engine takes ``now``; the daemon reads it once per tick. And how a
moment is shown to a person (``wall_time``): in the plan's zone, never UTC."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, aware, in UTC."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told (``simulate`` and tests)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("FakeClock needs an aware datetime")
        self._now = start.astimezone(UTC)

    def now(self) -> datetime:
        return self._now

    def set(self, when: datetime) -> None:
        self._now = when.astimezone(UTC)

    def advance(self, delta: timedelta) -> None:
        self._now += delta


class ShiftedClock:
    """Starts at ``start`` and advances with real elapsed time (the daemon under ``DUBAN_FAKE_NOW``)."""

    def __init__(self, start: datetime):
        if start.tzinfo is None:
            raise ValueError("ShiftedClock needs an aware datetime")
        self._start = start.astimezone(UTC)
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin)


FAKE_NOW_ENV = "DUBAN_FAKE_NOW"


def clock_from_environment(environ: Mapping[str, str]) -> Clock:
    """``SystemClock``, or for tests only a ``ShiftedClock`` at ``$DUBAN_FAKE_NOW`` (ISO 8601 with offset)."""
    value = environ.get(FAKE_NOW_ENV, "").strip()
    if not value:
        return SystemClock()
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:
        from workflows.errors import DubanError

        raise DubanError(
            f'{FAKE_NOW_ENV}: bad time "{value}", expected ISO 8601 with an offset, e.g. 2026-06-10T00:30:00+08:00'
        )
    return ShiftedClock(start)


def wall_time(at: datetime, tz: tzinfo | None = None, *, seconds: bool = False) -> str:
    """A moment as a person reads it: ``2026-12-08 09:41`` (``09:41:05`` with ``seconds``) on the
    wall clock of ``tz`` — the plan's zone — or of ``at``'s own offset when ``tz`` is None. Every
    CLI line, log line on a terminal and report shows times this way; ``--json`` keeps ISO 8601
    with the offset."""
    local = at.astimezone(tz) if tz is not None else at
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
