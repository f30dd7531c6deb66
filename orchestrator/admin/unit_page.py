"""The unit's page: ``unit_obligations``, its obligations in the running programs, most urgent first.

Each with its colour, its due date with weekday, which document (涉及文件) or period (期次) it is
about — as the emails name them, so two reviews of two documents are told apart — lead units,
deliverable, the office's last word and its history as a unit should read it: who did what is 本单位 / 督办办公室 / 系统, never an
operator's login name, and what the office wrote (a return's reason, from the submission), never
the audit log's own detail (it carries the office's client address and user agent). An obligation
due before its program's notify-from day and not recorded yet is grey and says 「启用前已到期，
待办公室核实」 (``portal_views.before_start``): the unit was never told of it. Nothing here changes
a row.

The obligations are found by the unit's index (``ix_obligation_unit``) whatever the planner knows:
the query names only the unit (and a state), and the running programs are picked in Python. With
``program_id IN (…)`` in it, SQLite without statistics took the (program, task, due) index and read
every obligation of the program — 671,111 for one unit's page at 20,000 units
(``benchmarks/unit_page.py``).
"""

from __future__ import annotations

from datetime import date

from sqlmodel import Session, select

from notifications.labels import BEFORE_START, UNIT_PAGE_STATES, label
from notifications.rows import occurrence_fact
from notifications.zh import WEEKDAYS
from orchestrator.admin.acting import Desk
from orchestrator.admin.portal_views import (
    EVENT_LABELS,
    URGENCY,
    HistoryEntry,
    UnitObligation,
    before_start,
    colour_of,
    desk_or_default,
    running_programs,
    submission_views,
    task_of,
    unit_name,
    workdays_until,
)
from orchestrator.engine.digest import DigestBuilder
from orchestrator.engine.programs import notify_day
from orchestrator.store.db import chunks
from orchestrator.store.models import Event, Obligation, Submission
from orchestrator.store.states import ACTIVE_STATES, Decision, ObligationState, SubmissionKind


def _by_obligation(session: Session, model, ids: list[int]) -> dict[int, list]:
    rows: dict[int, list] = {}
    for chunk in chunks(ids):
        for row in session.exec(select(model).where(model.obligation_id.in_(chunk)).order_by(model.id)):
            rows.setdefault(row.obligation_id, []).append(row)
    return rows


def _who(actor: str) -> str:
    if actor.startswith("unit:"):
        return "本单位"
    if actor in ("duban", "daemon"):
        return "系统"
    return "督办办公室"


def unit_query(unit: str):
    """A unit's obligations, not cancelled: by the unit's index (see the module's note)."""
    return select(Obligation).where(Obligation.unit == unit, Obligation.state != ObligationState.CANCELLED)


def _said(event: Event, views: dict) -> str | None:
    """What the office wrote to the unit with this event: a return's reason, as stored with the
    submission (the audit detail also holds the office's client address and user agent)."""
    if event.kind != "submission.returned":
        return None
    submission = views.get((event.after or {}).get("submission"))
    return submission.reason if submission is not None else None


def _occurrence(builder: DigestBuilder, program, desk: Desk, task, occurrence: str | None):
    """(涉及文件 | 期次, the document's 文号 and title or the period) as the emails say it, or None."""
    if occurrence is None:
        return None
    text, is_row = builder.occurrence_label(program, desk.bundles.get(program.workflow), task, occurrence)
    return occurrence_fact(occurrence, text, is_row=is_row)


def unit_obligations(
    session: Session, unit: str, today: date, *, desk: Desk | None = None
) -> list[UnitObligation]:
    """What the unit's page lists: its obligations in running programs, most urgent first."""
    desk = desk_or_default(desk)
    programs = running_programs(session)
    if not programs:
        return []
    obligations = [o for o in session.exec(unit_query(unit)) if o.program_id in programs]
    ids = [o.id for o in obligations]
    submissions = _by_obligation(session, Submission, ids)
    views = {v.id: v for v in submission_views(session, [s for rows in submissions.values() for s in rows])}
    events = _by_obligation(session, Event, ids)
    builder = DigestBuilder(session, desk.bundles)
    notify_from = {pid: notify_day(p) for pid, p in programs.items()}
    shown = []
    for o in obligations:
        program = programs[o.program_id]
        start = notify_from[o.program_id]
        late_start = before_start(o.state, o.due, start)
        mine = [views[s.id] for s in submissions.get(o.id, ())]
        decided = [s for s in mine if s.decision in (Decision.APPROVED, Decision.RETURNED)]
        last = max(decided, key=lambda s: s.decided_at, default=None)
        returned = last is not None and last.decision == Decision.RETURNED and o.state in ACTIVE_STATES
        task = task_of(desk, program.workflow, o.task)
        left = workdays_until(desk, program.workflow, today, o.due)
        history = tuple(
            HistoryEntry(e.at, _who(e.actor), EVENT_LABELS[e.kind], _said(e, views))
            for e in events.get(o.id, ())
            if e.kind in EVENT_LABELS
        )
        shown.append(
            UnitObligation(
                id=o.id,
                ref=f"#{o.id}",
                workflow=program.workflow,
                program_title=program.title,
                task=o.task,
                title=o.title,
                section=task.section if task else None,
                state=o.state,
                state_label=BEFORE_START if late_start else label(UNIT_PAGE_STATES, o.state),
                colour=colour_of(
                    o.state, o.due, today, returned=returned, workdays_left=left, notify_from=start
                ),
                due=o.due,
                due_weekday=WEEKDAYS[o.due.weekday()],
                opens=o.opens,
                lead=tuple(o.lead),
                lead_names=tuple(unit_name(desk, program.workflow, u) for u in o.lead),
                deliverable=task.deliverable if task else None,
                last_word=last.reason if last is not None and last.decision == Decision.RETURNED else None,
                acknowledged=any(s.kind == SubmissionKind.ACKNOWLEDGE for s in mine),
                pending=next((s.kind for s in mine if s.decision is None), None),
                extended_to=o.extended_to,
                submissions=tuple(mine),
                history=history,
                occurrence=_occurrence(builder, program, desk, task, o.occurrence),
                notify_from=start if late_start else None,
            )
        )
    shown.sort(key=lambda u: (URGENCY[u.colour], u.due, u.task, u.id))
    return shown
