"""An approved extension (延期): the obligation leaves its task occurrence's timers (they match its
members by due date) and gets timers of its own for the new date — each reminder, due today,
overdue and escalation step still ahead, and its opening notice if it has not opened yet: timers of
its task occurrence at the new date, narrowed to the obligation (``obligation_id``).

The keys name the obligation and the new date, so approving twice arms nothing twice; the
obligation's own unfired timers for an earlier date are cancelled. Reconciling a program keeps
them (``programs.start_program`` keeps the extended date and the obligation's own timers).
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlmodel import Session, select

from orchestrator.engine.programs import _timer_row, insert_ignoring_duplicates
from orchestrator.engine.window import local_day
from orchestrator.store.models import Obligation, Program, Timer
from orchestrator.store.states import ObligationState
from workflows.catalog import Bundle
from workflows.plan import Occurrence
from workflows.schedule import obligation_notices


def extension_timers(
    bundle: Bundle, program: Program, obligation: Obligation, today: date
) -> dict[str, dict]:
    """The timers the obligation needs for its (new) due date, from ``today`` on, by key."""
    task = bundle.definition.task(obligation.task)
    if task is None:
        return {}
    occ = Occurrence(
        workflow=program.workflow,
        task=obligation.task,
        title=obligation.title,
        phase=obligation.phase,
        unit=obligation.unit,
        lead=tuple(obligation.lead),
        occurrence=obligation.occurrence,
        opens=obligation.opens,
        due=obligation.due,
        nominal_due=obligation.due,
    )
    tz = ZoneInfo(program.timezone)
    notices = obligation_notices(
        occ, task, bundle.definition.workflow, bundle.units.directory, bundle.calendar, exclude_own=True
    )
    wanted: dict[str, dict] = {}
    for notice in notices:
        if notice.kind == "task_opened":
            if obligation.state != ObligationState.PENDING:
                continue  # opened already
            key = f"{obligation.key}/task_opened/0/{obligation.opens}"  # a late joiner's key: never twice
        elif notice.on < today:
            continue
        else:
            key = f"{obligation.key}/extended/{obligation.due}/{notice.kind}/{notice.step}/{notice.on}"
        wanted[key] = _timer_row(
            key,
            notice.kind,
            program,
            notice.on,
            tz,
            obligation_id=obligation.id,
            phase=obligation.phase,
            step=notice.step,
            recipients=notice.to if notice.kind == "escalation" else (),
            task=obligation.task,
            occurrence=obligation.occurrence,
            due=obligation.due,
            opens=obligation.opens,
        )
    return wanted


def rearm_obligation(
    session: Session, bundle: Bundle, program: Program, obligation: Obligation, now: datetime
) -> int:
    """Arm the obligation's own timers for its due date; cancel its unfired ones for another date.
    Returns how many timers were armed."""
    wanted = extension_timers(bundle, program, obligation, local_day(now, ZoneInfo(program.timezone)))
    existing = session.exec(
        select(Timer).where(Timer.obligation_id == obligation.id, Timer.fired_at.is_(None))
    ).all()
    for timer in existing:
        if timer.key not in wanted:
            timer.fired_at, timer.outcome = now, "cancelled"
    session.flush()
    return insert_ignoring_duplicates(session, Timer, list(wanted.values()))
