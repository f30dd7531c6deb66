"""What the unit and office pages show, as values: the views, the colours, the words.

The frozen dataclasses the pages and ``duban review`` read (``UnitObligation``, ``Review``,
``Unacknowledged``, ``BoardView`` and their parts), the colour rule (``colour_of``: 红 overdue,
黄 due within 3 working days or returned, 蓝 open or in review, 绿 done, 灰 waived — or due before
its program's notify-from day and not recorded yet, ``before_start``), the labels of submission
kinds, decisions and history events, and the read helpers the pages share (a unit's name, a task of
the plan, the running programs, submissions with their files).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from sqlmodel import Session, select

from orchestrator.admin.acting import NO_DESK, Desk
from orchestrator.store.db import chunks
from orchestrator.store.models import Evidence, Program, Submission
from orchestrator.store.states import OPEN_STATES, ObligationState, ProgramState

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


URGENCY = {Colour.RED: 0, Colour.YELLOW: 1, Colour.BLUE: 2, Colour.GREEN: 3, Colour.GREY: 4}
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
    occurrence: tuple[str, str] | None = None  # (涉及文件 | 期次, the document or the period)
    notify_from: date | None = None  # set when ``before_start``: the day duban began to notify

    @property
    def before_start(self) -> bool:
        """Due before duban notified anyone, and not recorded yet: the office is to verify it."""
        return self.notify_from is not None

    @property
    def can_submit(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def can_acknowledge(self) -> bool:
        """Offered 签收 (and counted by 全部签收): still owed, neither acknowledged nor submitted."""
        completed = any(s.kind == "completion" for s in self.submissions)
        return self.state in OPEN_STATES and not self.acknowledged and not completed


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


def desk_or_default(desk: Desk | None) -> Desk:
    return desk or NO_DESK


def unit_name(desk: Desk, workflow: str, unit: str) -> str:
    bundle = desk.bundles.get(workflow)
    return bundle.units.directory.name(unit) if bundle and unit in bundle.units.directory.by_id else unit


def unit_rank(desk: Desk, workflow: str, unit: str) -> int:
    """The unit's place in the units file (units are listed for people in the order it gives them)."""
    bundle = desk.bundles.get(workflow)
    return bundle.units.directory.rank(unit) if bundle else 0


def task_of(desk: Desk, workflow: str, task: str):
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


def before_start(state: str, due: date, notify_from: date | None) -> bool:
    """An obligation due before its program's notify-from day (``engine.programs.notify_day``) that
    nobody has recorded yet: no unit was ever told of it, the office's before-start summary listed it.
    It reads 「启用前已到期，待办公室核实」 in grey, not 「已逾期190天」 in red, until the office records
    it (done or waived) or its unit submits it."""
    return notify_from is not None and due < notify_from and state in OPEN_STATES


def colour_of(
    state: str,
    due: date,
    today: date,
    *,
    returned: bool,
    workdays_left: int,
    notify_from: date | None = None,
) -> Colour:
    if state == ObligationState.DONE:
        return Colour.GREEN
    if state in (ObligationState.WAIVED, ObligationState.CANCELLED):
        return Colour.GREY
    if state == ObligationState.SUBMITTED:
        return Colour.BLUE
    if before_start(state, due, notify_from):
        return Colour.GREY
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


def running_programs(session: Session) -> dict[int, Program]:
    return {p.id: p for p in session.exec(select(Program).where(Program.state == ProgramState.RUNNING))}
