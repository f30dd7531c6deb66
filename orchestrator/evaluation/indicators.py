"""Indicator values: one unit's number for one indicator and one period, checked against its target.

A value of a percent target (``">= 90%"``) is a rate in 0–100 %; offices count things, so a
numerator/denominator pair is first-class (``--count 12 --of 12`` is 100 %). A value of a plain
target (``"<= 5"``) is a number >= 0. Each (indicator, unit) is **met**, **not met** or **missing**
(no value for the period). Who reports an indicator: its ``reported_by`` units, else the task's
responsible units (for a register-anchored task: the units named in the register).

Every change is an ``indicator.set`` event in the audit log with the value before and after;
setting the same value again changes nothing and records nothing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, select

from orchestrator.store.audit import record
from orchestrator.store.models import IndicatorValue, Program
from workflows.catalog import Bundle
from workflows.errors import DubanError, NotFound, one_line_problem
from workflows.schema import Indicator, Task

MET, NOT_MET, MISSING, NOT_APPLICABLE = "met", "not_met", "missing", "not_applicable"
_NUMBER = re.compile(r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*(%?)\s*$")
_INTEGER = re.compile(r"^\s*([+-]?\d+)\s*$")


MAX_NOTE = 2000  # a remark on a value: one line, like a reason or evidence


class BadValue(DubanError):
    """An indicator value that cannot be stored (exit 2): out of range, not a number, N > M…"""


@dataclass(frozen=True)
class Reading:
    """A value to store: ``value`` (a rate in percent, or a plain number) and the counts behind it."""

    value: float | None
    count: int | None = None
    of: int | None = None
    not_applicable: bool = False

    def text(self, percent: bool) -> str:
        """``12/12 = 100%``, ``95.5%``, ``3`` or ``不适用``."""
        if self.not_applicable or self.value is None:
            return "不适用"
        number = format_number(self.value) + ("%" if percent else "")
        return f"{self.count}/{self.of} = {number}" if self.of is not None else number


@dataclass(frozen=True)
class IndicatorLine:
    """One (indicator, reporting unit) for a period, with its stored value if any."""

    task: Task
    indicator: Indicator
    unit: str
    unit_name: str
    period: int
    stored: IndicatorValue | None

    @property
    def status(self) -> str:
        stored = self.stored
        return status_of(
            self.indicator, stored.value if stored else None, bool(stored and stored.not_applicable)
        )

    def as_json(self, workflow: str) -> dict:
        stored = self.stored
        return {
            "workflow": workflow,
            "period": self.period,
            "indicator": self.indicator.id,
            "name": self.indicator.name,
            "task": self.task.id,
            "section": self.task.section,
            "target": str(self.indicator.target),
            "unit": self.unit,
            "unit_name": self.unit_name,
            "value": stored.value if stored else None,
            "count": stored.count if stored else None,
            "of": stored.of if stored else None,
            "status": self.status,
            "not_applicable": bool(stored and stored.not_applicable),
            "note": stored.note if stored else None,
            "updated_at": stored.updated_at.isoformat() if stored else None,
            "updated_by": stored.updated_by if stored else None,
        }


@dataclass(frozen=True)
class SetResult:
    changed: bool
    line: IndicatorLine
    before: dict | None
    after: dict


def format_number(value: float) -> str:
    """``100``, ``95.5``, ``91.67`` (at most two decimals, no trailing zeros)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def status_of(indicator: Indicator, value: float | None, not_applicable: bool = False) -> str:
    """``met``, ``not_met``, ``missing`` (no value) or ``not_applicable`` (counted neither way)."""
    if not_applicable:
        return NOT_APPLICABLE
    if value is None:
        return MISSING
    return MET if indicator.target.met(value) else NOT_MET


def find_indicator(bundle: Bundle, indicator_id: str) -> tuple[Task, Indicator]:
    """The task and indicator with id ``indicator_id``; ``NotFound`` names the known ids."""
    for task, indicator in bundle.definition.indicators:
        if indicator.id == indicator_id:
            return task, indicator
    known = ", ".join(i.id for _, i in bundle.definition.indicators) or "none"
    raise NotFound(f'indicator "{indicator_id}": not in {bundle.definition.workflow.id} (known: {known})')


def reporters(bundle: Bundle, task: Task, indicator: Indicator) -> tuple[str, ...]:
    """The units that report ``indicator`` and are scored on it, in units-file order."""
    directory = bundle.units.directory
    if indicator.reported_by:
        return directory.expand_all(indicator.reported_by)
    if task.anchor_register is not None:
        register = bundle.registers.get(task.anchor_register[0])
        named = {row.unit for row in register.rows} if register else set()
        return tuple(u.id for u in directory.units if u.id in named)
    return directory.expand_all(task.responsible)


def parse_reading(
    indicator: Indicator,
    value: str | None,
    count: str | None,
    of: str | None,
    *,
    not_applicable: bool = False,
    reason: str | None = None,
) -> Reading:
    """Check the command-line value against the indicator: one of ``value``, ``count``+``of``, or
    ``not_applicable`` with a ``reason`` (e.g. a township that issues no normative documents)."""
    if not_applicable:
        if value is not None or count is not None or of is not None:
            raise BadValue("--na: a value that does not apply has no number; leave out --value/--count/--of")
        if reason is None or not reason.strip():
            raise BadValue('--na needs --reason, e.g. --reason "本乡未制定规范性文件"')
        return Reading(None, not_applicable=True)
    if reason is not None:
        raise BadValue("--reason goes with --na; for a remark on a value use --note")
    if value is not None and (count is not None or of is not None):
        raise BadValue("give either --value or --count with --of, not both")
    if value is None and count is None and of is None:
        raise BadValue("give a value: --value V, or --count N --of M")
    if value is None:
        return _parse_counts(indicator, count, of)
    found = _NUMBER.match(value)
    if not found:
        raise BadValue(f'--value: "{value}" is not a number (e.g. 95, 95% or 95.5)')
    number = float(found.group(1))
    if found.group(2) and not indicator.target.percent:
        raise BadValue(
            f'--value: "{value}" is a rate, but {indicator.id} (target {indicator.target}) is a plain number'
        )
    return Reading(_check_value(indicator, number, value))


def _check_value(indicator: Indicator, number: float, text: str) -> float:
    if not math.isfinite(number):
        raise BadValue(f'--value: "{text}" is not a number')
    if number < 0:
        raise BadValue(f"--value: {text} is negative; {indicator.id} cannot be below 0")
    if indicator.target.percent and number > 100:
        raise BadValue(f"--value: {text} is above 100%; {indicator.id} is a rate (0–100%)")
    return number


def _parse_counts(indicator: Indicator, count: str | None, of: str | None) -> Reading:
    if count is None or of is None:
        raise BadValue("--count and --of go together: --count N --of M (e.g. 12 of 12 filed)")
    numbers = []
    for name, text in (("--count", count), ("--of", of)):
        found = _INTEGER.match(text)
        if not found:
            raise BadValue(f'{name}: "{text}" is not a whole number')
        numbers.append(int(found.group(1)))
    n, m = numbers
    if not indicator.target.percent:
        raise BadValue(
            f"--count/--of give a rate, but {indicator.id} (target {indicator.target}) is a plain number: "
            "use --value"
        )
    if n < 0 or m < 0:
        raise BadValue(f"--count {n} --of {m}: counts cannot be negative")
    if m == 0:
        raise BadValue("--of 0: with no cases there is no rate; give --of M with M >= 1")
    if n > m:
        raise BadValue(f"--count {n} is more than --of {m}: a rate cannot exceed 100%")
    return Reading(n * 100 / m, n, m)


def _check_unit(bundle: Bundle, task: Task, indicator: Indicator, unit: str) -> None:
    directory = bundle.units.directory
    if unit not in directory.by_id:
        raise NotFound(f'--unit "{unit}": unknown unit (not in {bundle.units.path})')
    allowed = reporters(bundle, task, indicator)
    if unit not in allowed:
        names = "、".join(directory.name(u) for u in allowed) or "nobody"
        raise BadValue(f"--unit {unit}: {indicator.id} is reported by {names}, not by {directory.name(unit)}")


def _snapshot(row: IndicatorValue) -> dict:
    snapshot = {"value": row.value, "count": row.count, "of": row.of, "note": row.note}
    return snapshot | ({"not_applicable": True} if row.not_applicable else {})


def check_period(session: Session, program: Program, period: int) -> int:
    """``--period`` must be a year of the program: its year, or a year one of its obligations is due in."""
    from sqlalchemy import func

    from orchestrator.store.models import Obligation

    low, high = session.exec(
        select(func.min(Obligation.due), func.max(Obligation.due)).where(Obligation.program_id == program.id)
    ).one()
    years = {program.year} | {d.year for d in (low, high) if d is not None}
    first, last = min(years), max(years)
    if not first <= period <= last:
        span = str(first) if first == last else f"{first}–{last}"
        raise BadValue(f"--period {period}: {program.workflow} {program.year} covers {span} only")
    return period


def set_value(
    session: Session,
    program: Program,
    bundle: Bundle,
    indicator_id: str,
    unit: str,
    reading: Reading,
    *,
    period: int,
    note: str | None,
    now: datetime,
    actor: str,
) -> SetResult:
    """Store ``reading`` for (indicator, unit, period) and audit the change; nothing if unchanged.

    Raises ``NotFound`` (unknown indicator or unit) or ``BadValue`` before anything is written.
    """
    problem = one_line_problem(note, "--note", MAX_NOTE) if note else None
    if problem is not None:
        raise BadValue(problem)
    task, indicator = find_indicator(bundle, indicator_id)
    _check_unit(bundle, task, indicator, unit)
    row = session.exec(
        select(IndicatorValue).where(
            IndicatorValue.program_id == program.id,
            IndicatorValue.indicator == indicator.id,
            IndicatorValue.unit == unit,
            IndicatorValue.period == period,
        )
    ).first()
    before = _snapshot(row) if row else None
    after = {"value": reading.value, "count": reading.count, "of": reading.of, "note": note}
    after |= {"not_applicable": True} if reading.not_applicable else {}
    if row is not None and note is None:
        after["note"] = row.note  # keep an earlier note unless a new one is given
    if before == after:
        return SetResult(False, _line(bundle, task, indicator, unit, period, row), before, after)
    if row is None:
        row = IndicatorValue(
            program_id=program.id, indicator=indicator.id, unit=unit, period=period, value=reading.value,
            updated_at=now, updated_by=actor,
        )  # fmt: skip
        session.add(row)
    row.value, row.count, row.of, row.note = reading.value, reading.count, reading.of, after["note"]
    row.not_applicable = reading.not_applicable
    row.updated_at, row.updated_by = now, actor
    session.flush()
    record(
        session,
        at=now,
        actor=actor,
        kind="indicator.set",
        program_id=program.id,
        unit=unit,
        subject=f"{indicator.id}/{period}",
        before=before,
        after=after | {"status": status_of(indicator, reading.value, reading.not_applicable)},
    )
    return SetResult(True, _line(bundle, task, indicator, unit, period, row), before, after)


def _line(bundle: Bundle, task, indicator, unit: str, period: int, row) -> IndicatorLine:
    return IndicatorLine(task, indicator, unit, bundle.units.directory.name(unit), period, row)


def stored_values(session: Session, program_id: int, period: int) -> dict[tuple[str, str], IndicatorValue]:
    """(indicator id, unit) → stored value, for one program and period."""
    rows = session.exec(
        select(IndicatorValue).where(IndicatorValue.program_id == program_id, IndicatorValue.period == period)
    )
    return {(row.indicator, row.unit): row for row in rows}


def indicator_lines(
    session: Session, program: Program, bundle: Bundle, period: int, *, unit: str | None = None
) -> list[IndicatorLine]:
    """Every (indicator, reporting unit) of the plan for ``period``, in definition then units order."""
    if unit is not None and unit not in bundle.units.directory.by_id:
        raise NotFound(f'--unit "{unit}": unknown unit (not in {bundle.units.path})')
    stored = stored_values(session, program.id, period)
    lines = []
    for task, indicator in bundle.definition.indicators:
        for reporter in reporters(bundle, task, indicator):
            if unit is None or reporter == unit:
                lines.append(
                    _line(bundle, task, indicator, reporter, period, stored.get((indicator.id, reporter)))
                )
    return lines
