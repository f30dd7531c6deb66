"""When each notice of an obligation or a phase is due: pure decisions, no I/O.

The orchestrator turns these into timer rows. Every date here is a local day; the dispatcher
later puts the items into the first send window on or after it (a working day).
Rules (DESIGN.md "Dates"): ``task_opened`` on the opening day; each reminder at due + offset
rolled *back* to a working day; ``due_today`` on the due date; ``overdue`` the day after the due
date (sent on the next working day); each escalation step at due + ``after`` rolled *forward*.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from workflows.calendar import WorkdayCalendar
from workflows.offsets import shift
from workflows.plan import Occurrence, PhaseDates
from workflows.schema import EscalationStep, Task, WorkflowInfo
from workflows.units import UnitDirectory


@dataclass(frozen=True)
class Notice:
    """One timer: ``kind`` on local day ``on``; ``to`` are recipient unit ids (empty: decided later)."""

    kind: str
    on: date
    step: int = 0
    to: tuple[str, ...] = ()


def escalation_recipients(
    step: EscalationStep,
    occ: Occurrence,
    units: UnitDirectory,
    *,
    exclude_own: bool = True,
    office: str | None = None,
) -> tuple[str, ...]:
    """``lead`` → the task's lead units; ``role:X`` / a unit id → those units (a role absent here:
    the ``office``, as for a lead). Never the late unit itself (``exclude_own=False``: the step's
    recipients for every unit of the task occurrence; the engine then leaves each recipient's own
    obligation out of what it is told)."""
    seen: dict[str, None] = {}
    for ref in step.to:
        for unit_id in occ.lead if ref == "lead" else units.expand_all([ref], absent_to=office):
            if unit_id != occ.unit or not exclude_own:
                seen.setdefault(unit_id, None)
    return tuple(seen)


def obligation_notices(
    occ: Occurrence,
    task: Task,
    workflow: WorkflowInfo,
    units: UnitDirectory,
    cal: WorkdayCalendar,
    *,
    exclude_own: bool = True,
) -> list[Notice]:
    """Every notice of one obligation, in date order (``exclude_own``: see ``escalation_recipients``)."""
    notices = [Notice("task_opened", occ.opens, to=(occ.unit,))]
    reminders: dict[date, int] = {}
    for step, offset in enumerate(task.reminders if task.reminders is not None else workflow.reminders):
        day = cal.prev_workday(shift(occ.due, offset, cal))
        if occ.opens < day < occ.due:
            reminders[day] = step
    notices += [Notice("reminder", day, step, (occ.unit,)) for day, step in sorted(reminders.items())]
    notices.append(Notice("due_today", occ.due, to=(occ.unit,)))
    notices.append(Notice("overdue", occ.due + timedelta(days=1), to=(occ.unit,)))
    steps = task.escalation if task.escalation is not None else workflow.escalation
    for step_no, step in enumerate(steps):
        day = cal.next_workday(shift(occ.due, step.after, cal))
        recipients = escalation_recipients(step, occ, units, exclude_own=exclude_own, office=workflow.contact)
        if recipients:
            notices.append(Notice("escalation", max(day, occ.due + timedelta(days=1)), step_no, recipients))
    notices.sort(key=lambda n: (n.on, n.kind, n.step))
    return notices


def phase_notices(phase: PhaseDates, workflow: WorkflowInfo, cal: WorkdayCalendar) -> list[Notice]:
    """``phase_started`` on its first day, ``phase_ending`` if configured, ``phase_closed`` the day after."""
    notices = [Notice("phase_started", phase.start)]
    if workflow.phase_ending is not None:
        day = cal.prev_workday(shift(phase.end, workflow.phase_ending, cal))
        if phase.start < day <= phase.end:
            notices.append(Notice("phase_ending", day))
    notices.append(Notice("phase_closed", phase.end + timedelta(days=1)))
    return notices
