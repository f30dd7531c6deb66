"""``plan()``: definition + units + registers + year → every obligation with its dates.

Deterministic: no clock, no database. Due dates follow the working-day rule (a due date on a
non-working day moves to the next working day — or, for a task with ``roll = "backward"``, a
deadline to be met *before* a date such as a document's expiry, to the working day before it); an obligation opens ``window`` before its
nominal due date if the task has a window, else at its phase's start (``-30d`` before the due date
for a duty outside any phase), rolled forward to a working day but never after its due date.
An occurrence belongs to the year of its *nominal* date (a rrule date, a register row's date),
even when the working-day rule moves it into the next January: each belongs to exactly one year.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from itertools import groupby

from workflows.calendar import WorkdayCalendar
from workflows.offsets import Offset, shift
from workflows.recurrence import occurrences_in_year
from workflows.registers import Register
from workflows.schema import Definition, Phase, Task
from workflows.units import UnitDirectory

DEFAULT_WINDOW = Offset(-30, "d")


@dataclass(frozen=True, slots=True)
class Occurrence:
    """One obligation: one task or duty occurrence owed by one unit."""

    workflow: str
    task: str
    title: str
    phase: str | None
    unit: str
    lead: tuple[str, ...]
    occurrence: str | None
    opens: date
    due: date
    nominal_due: date

    def as_json(self) -> dict:
        return {
            "workflow": self.workflow,
            "task": self.task,
            "title": self.title,
            "phase": self.phase,
            "unit": self.unit,
            "lead": list(self.lead),
            "occurrence": self.occurrence,
            "opens": self.opens.isoformat(),
            "due": self.due.isoformat(),
        }


@dataclass(frozen=True)
class PhaseDates:
    id: str
    name: str
    start: date
    end: date


def phase_dates(phase: Phase, year: int) -> PhaseDates:
    return PhaseDates(phase.id, phase.name, phase.start.in_year(year), phase.end.in_year(year))


def _nominal_dues(
    task: Task, phase: Phase | None, year: int, registers: Mapping[str, Register]
) -> list[tuple[str | None, date, str | None]]:
    """``(occurrence key, nominal due date, register unit or None)`` for one task in one year."""
    if task.due is not None:
        return [(None, task.due.in_year(year), None)]
    if task.rrule is not None:
        return [(d.isoformat(), d, None) for d in occurrences_in_year(task.rrule, year)]
    if task.anchor_register is not None:
        name, column = task.anchor_register
        register = registers.get(name)
        if register is None:
            return []
        return [(row.id, d, row.unit) for row, d in register.dates(column) if d.year == year]
    assert phase is not None, "the schema guarantees a phase when no date rule is given"
    return [(None, phase.end.in_year(year), None)]


def _opens(task: Task, phase: Phase | None, year: int, nominal_due: date, cal: WorkdayCalendar) -> date:
    if task.window is not None:
        return shift(nominal_due, task.window, cal)
    if phase is not None:
        return phase.start.in_year(year)
    return shift(nominal_due, DEFAULT_WINDOW, cal)


def plan(
    definition: Definition,
    units: UnitDirectory,
    year: int,
    cal: WorkdayCalendar,
    registers: Mapping[str, Register] | None = None,
) -> list[Occurrence]:
    """Every obligation of ``definition`` for ``year``, ordered by due date, task, unit."""
    return list(iter_plan(definition, units, year, cal, registers))


def iter_plan(
    definition: Definition,
    units: UnitDirectory,
    year: int,
    cal: WorkdayCalendar,
    registers: Mapping[str, Register] | None = None,
) -> Iterator[Occurrence]:
    """``plan()``'s obligations in its order, made one (due date, task) at a time: a province's
    1.67M obligations are never in memory together, only the largest task occurrence's units."""
    registers = registers or {}
    workflow = definition.workflow.id
    dues: list[tuple] = []  # (due, task id, order made, task, lead, key, opens, nominal, owners)
    office = definition.workflow.contact
    for task in definition.all_tasks:
        phase = definition.phase(task.phase)
        lead = units.expand_all(task.lead, absent_to=office)  # a role absent here: the office leads
        responsible = units.expand_all(task.responsible)
        for key, nominal, register_unit in _nominal_dues(task, phase, year, registers):
            due = cal.prev_workday(nominal) if task.roll == "backward" else cal.next_workday(nominal)
            opens = min(cal.next_workday(_opens(task, phase, year, nominal, cal)), due)
            owners = (register_unit,) if register_unit is not None else responsible
            dues.append((due, task.id, len(dues), task, lead, key, opens, nominal, owners))
    dues.sort(key=lambda d: d[:3])  # (due, task) groups, each in the order it was made
    for _, group in groupby(dues, key=lambda d: d[:2]):
        out = []
        for due, _, _, task, lead, key, opens, nominal, owners in group:
            out.extend(
                Occurrence(workflow, task.id, task.title, task.phase, unit, lead, key, opens, due, nominal)
                for unit in owners
            )
        out.sort(key=lambda o: (o.unit, o.occurrence or ""))  # stable: ties keep the order they were made
        yield from out
