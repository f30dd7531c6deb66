"""Date offsets as written in plans: ``"-7d"`` (calendar days), ``"-3wd"`` (working days), ``"-6mo"``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal, cast, get_args

from dateutil.relativedelta import relativedelta

from workflows.calendar import WorkdayCalendar

Unit = Literal["d", "wd", "mo"]
UNITS: tuple[Unit, ...] = get_args(Unit)

_OFFSET = re.compile(r"([+-]?[0-9]+)(d|wd|mo)")


@dataclass(frozen=True)
class Offset:
    """A signed amount of calendar days (``d``), working days (``wd``) or months (``mo``).

    ``str()`` is the canonical text, which ``parse_offset`` reads back: ``"-7d"``, ``"3wd"``.
    """

    amount: int
    unit: Unit

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"bad offset unit {self.unit!r}: expected one of {', '.join(UNITS)}")
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise ValueError(f"bad offset amount {self.amount!r}: expected an integer")

    def __str__(self) -> str:
        return f"{self.amount}{self.unit}"


def parse_offset(text: str) -> Offset:
    """``"-7d"``, ``"+7d"``, ``"7d"``, ``"-3wd"``, ``"-6mo"`` as an ``Offset``; whitespace around is ignored.

    Raises ``ValueError`` naming the text and what is expected for anything else.
    """
    match = _OFFSET.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(
            f"bad offset {_quoted(text)}: expected a signed number and a unit d (days), wd (working days) "
            'or mo (months), e.g. "-7d", "-3wd", "-6mo"'
        )
    return Offset(int(match[1]), cast(Unit, match[2]))


def shift(d: date, off: Offset, cal: WorkdayCalendar) -> date:
    """``d`` moved by ``off``.

    ``d``: calendar days. ``wd``: ``cal.add_workdays(d, amount)`` — the n-th working day strictly
    after/before ``d``; ``0wd`` is ``cal.next_workday(d)``. ``mo``: calendar months, a day past the
    end of the target month clamped to its last day (08-31 −6mo → 02-28, or 02-29 in a leap year).
    """
    if off.unit == "d":
        return d + timedelta(days=off.amount)
    if off.unit == "wd":
        return cal.add_workdays(d, off.amount)
    return d + relativedelta(months=off.amount)


def _quoted(text: object) -> str:
    """``text`` in double quotes for a message (``repr`` if it is not a string)."""
    return f'"{text}"' if isinstance(text, str) else repr(text)
