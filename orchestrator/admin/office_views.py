"""What the office reads: submissions waiting for review, units that have not acknowledged, the board.

- ``pending_reviews``: completions and extensions waiting for the office, oldest first, with files.
- ``unacknowledged``: open obligations whose unit has neither acknowledged nor submitted.
- ``board``: units × tasks of the running programs, each cell the most urgent colour of its
  obligations (grey for those due before their program's notify-from day and not recorded yet,
  as on the unit's page); units in the units file's order.
- ``submission_rows``: ``duban show``'s submissions of one obligation, as JSON-ready rows.

Nothing here changes a row.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlmodel import Session, select

from orchestrator.admin.acting import Desk
from orchestrator.admin.portal_views import (
    URGENCY,
    BoardView,
    Cell,
    Colour,
    Review,
    Unacknowledged,
    colour_of,
    desk_or_default,
    running_programs,
    submission_views,
    task_of,
    unit_name,
    unit_rank,
    workdays_until,
)
from orchestrator.engine.programs import notify_day
from orchestrator.store.models import Obligation, Program, Submission
from orchestrator.store.states import ACTIVE_STATES, Decision, ObligationState, SubmissionKind


def pending_reviews(session: Session, *, desk: Desk | None = None) -> list[Review]:
    """Completions and extensions waiting for the office, oldest first."""
    desk = desk_or_default(desk)
    rows = list(
        session.exec(
            select(Submission)
            .where(
                Submission.decision.is_(None),
                Submission.kind.in_((SubmissionKind.COMPLETION, SubmissionKind.EXTENSION)),
            )
            .order_by(Submission.submitted_at, Submission.id)
        )
    )
    reviews = []
    for view in submission_views(session, rows):
        o = session.get(Obligation, view.obligation_id)
        program = session.get(Program, o.program_id)
        reviews.append(
            Review(
                view,
                f"#{o.id}",
                o.task,
                o.title,
                o.unit,
                unit_name(desk, program.workflow, o.unit),
                o.due,
                o.state,
            )
        )
    return reviews


def unacknowledged(session: Session, *, desk: Desk | None = None) -> list[Unacknowledged]:
    """Open or overdue obligations in running programs whose unit has not acknowledged (签收) nor
    submitted anything, by unit (in the units file's order) then due date."""
    desk = desk_or_default(desk)
    programs = running_programs(session)
    answered = select(Submission.obligation_id).where(
        Submission.kind.in_((SubmissionKind.ACKNOWLEDGE, SubmissionKind.COMPLETION))
    )
    rows = session.exec(
        select(Obligation)
        .where(
            Obligation.program_id.in_(programs),
            Obligation.state.in_(tuple(ACTIVE_STATES)),
            Obligation.id.not_in(answered),
        )
        .order_by(Obligation.unit, Obligation.due, Obligation.id)
    )
    rows = sorted(rows, key=lambda o: (unit_rank(desk, programs[o.program_id].workflow, o.unit), o.unit))
    return [
        Unacknowledged(
            o.id,
            f"#{o.id}",
            o.unit,
            unit_name(desk, programs[o.program_id].workflow, o.unit),
            o.task,
            o.title,
            o.due,
        )
        for o in rows
    ]


def board(
    session: Session,
    today: date,
    *,
    desk: Desk | None = None,
    section: str | None = None,
    unit: str | None = None,
) -> BoardView:
    """Units × tasks of the running programs; each cell the most urgent colour of its obligations."""
    desk = desk_or_default(desk)
    programs = running_programs(session)
    query = select(Obligation).where(
        Obligation.program_id.in_(programs), Obligation.state != ObligationState.CANCELLED
    )
    if unit:
        query = query.where(Obligation.unit == unit)
    returned = set(
        session.exec(
            select(Submission.obligation_id).where(
                Submission.decision == Decision.RETURNED, Submission.kind == SubmissionKind.COMPLETION
            )
        )
    )
    notify_from = {pid: notify_day(p) for pid, p in programs.items()}
    cells: dict[tuple[str, str], list[tuple[Colour, int, str]]] = {}
    units: dict[str, str] = {}
    ranks: dict[str, int] = {}
    tasks: dict[str, tuple[str, str, str | None]] = {}
    sections: set[str] = set()
    for o in session.exec(query):
        workflow = programs[o.program_id].workflow
        task = task_of(desk, workflow, o.task)
        task_section = task.section if task else None
        if task_section:
            sections.add(task_section)
        if section and task_section != section:
            continue
        left = workdays_until(desk, workflow, today, o.due)
        colour = colour_of(
            o.state,
            o.due,
            today,
            returned=o.id in returned and o.state in ACTIVE_STATES,
            workdays_left=left,
            notify_from=notify_from[o.program_id],
        )
        cells.setdefault((o.unit, o.task), []).append((colour, o.id, o.state))
        units.setdefault(o.unit, unit_name(desk, workflow, o.unit))
        ranks.setdefault(o.unit, unit_rank(desk, workflow, o.unit))
        tasks.setdefault(o.task, (o.task, o.title, task_section))
    return BoardView(
        units=tuple(
            sorted(units.items(), key=lambda unit: (ranks[unit[0]], unit[0]))
        ),  # the units file's order
        tasks=tuple(sorted(tasks.values())),
        cells={
            key: Cell(
                min((c for c, _, _ in found), key=URGENCY.__getitem__),
                tuple(i for _, i, _ in found),
                tuple(s for _, _, s in found),
            )
            for key, found in cells.items()
        },
        sections=tuple(sorted(sections)),
    )


def submission_rows(session: Session, obligation_id: int, tz) -> list[dict]:
    """``duban show``: the obligation's submissions, decisions and files, as JSON-ready rows."""
    rows = list(
        session.exec(
            select(Submission).where(Submission.obligation_id == obligation_id).order_by(Submission.id)
        )
    )

    def iso(at: datetime | None) -> str | None:
        return at.astimezone(tz).isoformat(timespec="seconds") if at else None

    return [
        {
            "id": s.id,
            "kind": s.kind,
            "unit": s.unit,
            "submitted_at": iso(s.submitted_at),
            "note": s.note,
            "requested": str(s.requested) if s.requested else None,
            "decision": s.decision,
            "decided_at": iso(s.decided_at),
            "decided_by": s.decided_by,
            "reason": s.reason,
            "files": [
                {"id": f.id, "name": f.name, "size": f.size, "sha256": f.sha256, "media_type": f.media_type}
                for f in s.files
            ],
        }
        for s in submission_views(session, rows)
    ]
