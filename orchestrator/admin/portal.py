"""What the unit page, the office page and ``duban review`` read (nothing here changes a row).

- ``unit_obligations``: a unit's obligations in the running programs, most urgent first, each with
  its colour — 红 overdue, 黄 due within 3 working days or returned, 蓝 open (or in review, or not
  open yet), 绿 done (灰 waived) — its due date with weekday, lead units, deliverable, the office's
  last word and its history (as a unit should read it: who did what is 本单位 / 督办办公室 / 系统,
  never an operator's login name).
- ``pending_reviews``: completions and extensions waiting for the office, oldest first, with files.
- ``unacknowledged``: open obligations whose unit has neither acknowledged nor submitted.
- ``board``: units × tasks of the running programs, each cell the most urgent colour of its
  obligations.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from sqlmodel import Session, select

from notifications.zh import WEEKDAYS
from orchestrator.store.db import chunks
from orchestrator.store.models import Event, Evidence, Obligation, Program, Submission
from orchestrator.store.states import ACTIVE_STATES, Decision, ObligationState, ProgramState, SubmissionKind

if TYPE_CHECKING:
    from orchestrator.admin.submissions import Desk

YELLOW_WORKDAYS = 3


class Colour(StrEnum):
    RED = "red"
    YELLOW = "yellow"
    BLUE = "blue"
    GREEN = "green"
    GREY = "grey"

    @property
    def label(self) -> str:
        return {"red": "红", "yellow": "黄", "blue": "蓝", "green": "绿", "grey": "灰"}[self.value]


_RANK = {Colour.RED: 0, Colour.YELLOW: 1, Colour.BLUE: 2, Colour.GREEN: 3, Colour.GREY: 4}
STATE_LABELS = {
    "pending": "未开始",
    "open": "办理中",
    "overdue": "已逾期",
    "submitted": "待审核",
    "done": "已办结",
    "waived": "已免除",
    "cancelled": "已取消",
}
KIND_LABELS = {"acknowledge": "签收", "feedback": "反馈", "completion": "办结申请", "extension": "延期申请"}
DECISION_LABELS = {"approved": "通过", "returned": "退回", "noted": "已记录"}
EVENT_LABELS = {
    "obligation.open": "开始办理",
    "obligation.overdue": "已逾期",
    "obligation.done": "已办结",
    "obligation.waived": "免除",
    "obligation.reopened": "重新办理",
    "obligation.submitted": "提交办结申请",
    "obligation.extended": "同意延期",
    "obligation.moved": "日期调整",
    "unit.acknowledged": "签收",
    "unit.feedback": "反馈",
    "unit.extension_requested": "申请延期",
    "submission.returned": "退回",
}


@dataclass(frozen=True)
class FileView:
    id: int
    sha256: str
    size: int
    media_type: str
    name: str


@dataclass(frozen=True)
class SubmissionView:
    id: int
    kind: str
    kind_label: str
    obligation_id: int
    unit: str
    submitted_at: datetime
    note: str | None
    requested: date | None
    decision: str | None
    decided_at: datetime | None
    reason: str | None
    decided_by: str | None
    files: tuple[FileView, ...]


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    who: str  # 本单位 / 督办办公室 / 系统
    what: str
    text: str | None


@dataclass(frozen=True)
class UnitObligation:
    id: int
    ref: str
    workflow: str
    program_title: str
    task: str
    title: str
    section: str | None
    state: str
    state_label: str
    colour: Colour
    due: date
    due_weekday: str
    opens: date
    lead: tuple[str, ...]
    lead_names: tuple[str, ...]
    deliverable: str | None
    last_word: str | None  # the office's latest reason (a return), or None
    acknowledged: bool
    pending: str | None  # the kind of a submission waiting for review
    extended_to: date | None
    submissions: tuple[SubmissionView, ...]
    history: tuple[HistoryEntry, ...]

    @property
    def can_submit(self) -> bool:
        return self.state in ("pending", "open", "overdue")


@dataclass(frozen=True)
class Review:
    submission: SubmissionView
    ref: str
    task: str
    title: str
    unit: str
    unit_name: str
    due: date
    state: str


@dataclass(frozen=True)
class Unacknowledged:
    obligation_id: int
    ref: str
    unit: str
    unit_name: str
    task: str
    title: str
    due: date


@dataclass(frozen=True)
class Cell:
    colour: Colour
    obligations: tuple[int, ...]
    states: tuple[str, ...]


@dataclass(frozen=True)
class BoardView:
    units: tuple[tuple[str, str], ...]  # (id, name)
    tasks: tuple[tuple[str, str, str | None], ...]  # (task, title, section)
    cells: Mapping[tuple[str, str], Cell]  # (unit, task) → cell
    sections: tuple[str, ...]


# -- helpers -----------------------------------------------------------------------------------------


def _desk(desk: Desk | None) -> Desk:
    from orchestrator.admin.submissions import NO_DESK

    return desk or NO_DESK


def _name(desk: Desk, workflow: str, unit: str) -> str:
    bundle = desk.bundles.get(workflow)
    return bundle.units.directory.name(unit) if bundle and unit in bundle.units.directory.by_id else unit


def _task(desk: Desk, workflow: str, task: str):
    bundle = desk.bundles.get(workflow)
    return bundle.definition.task(task) if bundle else None


def workdays_until(desk: Desk, workflow: str, today: date, due: date) -> int:
    """Working days after ``today`` up to ``due`` (calendar days without the plan's calendar)."""
    bundle = desk.bundles.get(workflow)
    if bundle is None or due <= today:
        return (due - today).days
    count, day = 0, today
    while day < due and count <= YELLOW_WORKDAYS:
        day += timedelta(days=1)
        count += bundle.calendar.is_workday(day)
    return count


def colour_of(state: str, due: date, today: date, *, returned: bool, workdays_left: int) -> Colour:
    if state == ObligationState.DONE:
        return Colour.GREEN
    if state in (ObligationState.WAIVED, ObligationState.CANCELLED):
        return Colour.GREY
    if state == ObligationState.SUBMITTED:
        return Colour.BLUE
    if state == ObligationState.OVERDUE or today > due:
        return Colour.RED
    if returned or (state == ObligationState.OPEN and workdays_left <= YELLOW_WORKDAYS):
        return Colour.YELLOW
    return Colour.BLUE


def _files(session: Session, submission_ids: Iterable[int]) -> dict[int, list[FileView]]:
    found: dict[int, list[FileView]] = {}
    for chunk in chunks(sorted(set(submission_ids))):
        for f in session.exec(
            select(Evidence).where(Evidence.submission_id.in_(chunk)).order_by(Evidence.id)
        ):
            found.setdefault(f.submission_id, []).append(
                FileView(f.id, f.sha256, f.size, f.media_type, f.original_name)
            )
    return found


def submission_views(session: Session, submissions: list[Submission]) -> list[SubmissionView]:
    files = _files(session, (s.id for s in submissions))
    return [
        SubmissionView(
            s.id,
            s.kind,
            KIND_LABELS.get(s.kind, s.kind),
            s.obligation_id,
            s.unit,
            s.submitted_at,
            s.note,
            s.requested,
            s.decision,
            s.decided_at,
            s.reason,
            s.decided_by,
            tuple(files.get(s.id, ())),
        )
        for s in submissions
    ]


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


def _running(session: Session) -> dict[int, Program]:
    return {p.id: p for p in session.exec(select(Program).where(Program.state == ProgramState.RUNNING))}


# -- the unit page -----------------------------------------------------------------------------------


def unit_obligations(
    session: Session, unit: str, today: date, *, desk: Desk | None = None
) -> list[UnitObligation]:
    """What the unit's page lists: its obligations in running programs, most urgent first."""
    desk = _desk(desk)
    programs = _running(session)
    if not programs:
        return []
    obligations = list(
        session.exec(
            select(Obligation).where(
                Obligation.unit == unit,
                Obligation.program_id.in_(programs),
                Obligation.state != ObligationState.CANCELLED,
            )
        )
    )
    ids = [o.id for o in obligations]
    submissions = _by_obligation(session, Submission, ids)
    views = {v.id: v for v in submission_views(session, [s for rows in submissions.values() for s in rows])}
    events = _by_obligation(session, Event, ids)
    shown = []
    for o in obligations:
        program = programs[o.program_id]
        mine = [views[s.id] for s in submissions.get(o.id, ())]
        decided = [s for s in mine if s.decision in (Decision.APPROVED, Decision.RETURNED)]
        last = max(decided, key=lambda s: s.decided_at, default=None)
        returned = last is not None and last.decision == Decision.RETURNED and o.state in ACTIVE_STATES
        task = _task(desk, program.workflow, o.task)
        left = workdays_until(desk, program.workflow, today, o.due)
        history = tuple(
            HistoryEntry(
                e.at,
                _who(e.actor),
                EVENT_LABELS[e.kind],
                e.detail if e.kind == "submission.returned" else None,
            )
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
                state_label=STATE_LABELS.get(o.state, o.state),
                colour=colour_of(o.state, o.due, today, returned=returned, workdays_left=left),
                due=o.due,
                due_weekday=WEEKDAYS[o.due.weekday()],
                opens=o.opens,
                lead=tuple(o.lead),
                lead_names=tuple(_name(desk, program.workflow, u) for u in o.lead),
                deliverable=task.deliverable if task else None,
                last_word=last.reason if last is not None and last.decision == Decision.RETURNED else None,
                acknowledged=any(s.kind == SubmissionKind.ACKNOWLEDGE for s in mine),
                pending=next((s.kind for s in mine if s.decision is None), None),
                extended_to=o.extended_to,
                submissions=tuple(mine),
                history=history,
            )
        )
    shown.sort(key=lambda u: (_RANK[u.colour], u.due, u.task, u.id))
    return shown


# -- the office ----------------------------------------------------------------------------------------


def pending_reviews(session: Session, *, desk: Desk | None = None) -> list[Review]:
    """Completions and extensions waiting for the office, oldest first."""
    desk = _desk(desk)
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
                _name(desk, program.workflow, o.unit),
                o.due,
                o.state,
            )
        )
    return reviews


def unacknowledged(session: Session, *, desk: Desk | None = None) -> list[Unacknowledged]:
    """Open or overdue obligations in running programs whose unit has not acknowledged (签收) nor
    submitted anything, by unit then due date."""
    desk = _desk(desk)
    programs = _running(session)
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
    return [
        Unacknowledged(
            o.id,
            f"#{o.id}",
            o.unit,
            _name(desk, programs[o.program_id].workflow, o.unit),
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
    desk = _desk(desk)
    programs = _running(session)
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
    cells: dict[tuple[str, str], list[tuple[Colour, int, str]]] = {}
    units: dict[str, str] = {}
    tasks: dict[str, tuple[str, str, str | None]] = {}
    sections: set[str] = set()
    for o in session.exec(query):
        workflow = programs[o.program_id].workflow
        task = _task(desk, workflow, o.task)
        task_section = task.section if task else None
        if task_section:
            sections.add(task_section)
        if section and task_section != section:
            continue
        left = workdays_until(desk, workflow, today, o.due)
        colour = colour_of(
            o.state, o.due, today, returned=o.id in returned and o.state in ACTIVE_STATES, workdays_left=left
        )
        cells.setdefault((o.unit, o.task), []).append((colour, o.id, o.state))
        units.setdefault(o.unit, _name(desk, workflow, o.unit))
        tasks.setdefault(o.task, (o.task, o.title, task_section))
    return BoardView(
        units=tuple(sorted(units.items())),
        tasks=tuple(sorted(tasks.values())),
        cells={
            key: Cell(
                min((c for c, _, _ in found), key=_RANK.__getitem__),
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
